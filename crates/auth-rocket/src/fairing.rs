//! The fairing: it loads the session of every request, and writes what auth-core asks for into the
//! response.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use auth_core::{Auth, AuthBuilder, AuthResponse, SessionLookup};
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::Status;
use rocket::request::Outcome;
use rocket::{Build, Catcher, Data, Ignite, Request, Response, Rocket, catcher};

use crate::{AuthRejection, config, convert};

/// The status a refusing guard fails with. Never sent: the fairing's catcher (or, when another
/// catcher answered, its response hook) replaces the response with auth-core's answer.
pub(crate) const REFUSED: Status = Status::new(599);

/// Loads the session of every request for the guards ([`AuthUser`](crate::AuthUser),
/// [`Authorized`](crate::Authorized)) and adds the cookie changes auth-core asks for to every
/// response.
///
/// Attach it once; the guards' [`Sentinel`](rocket::Sentinel)s abort launch when it is missing.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let op = auth_testkit::TestProvider::start().await?;
/// # let auth = auth_core::Auth::builder()
/// #     .provider(auth_core::Provider::oidc("oidc", op.issuer(), op.client_id()).with_client_secret(op.client_secret()))
/// #     .build().await?;
/// use auth_rocket::AuthFairing;
/// use rocket::local::asynchronous::Client;
///
/// let rocket = rocket::build().attach(AuthFairing::new(auth)).mount("/", auth_rocket::routes());
/// let client = Client::tracked(rocket).await?;
/// // The login route redirects to the provider.
/// let res = client.get("/auth/oidc/login?next=/me").dispatch().await;
/// assert_eq!(res.status().code, 302);
/// assert!(res.headers().get_one("location").unwrap().starts_with(op.issuer()));
/// # Ok(()) }
/// ```
///
/// # How a refusing guard answers
/// A Rocket guard can only fail with a status, but auth-core's answer to a missing login is a
/// whole response (a redirect with `Location`, or 401 JSON with `WWW-Authenticate`). So a
/// refusing guard keeps that response in the request-local cache and fails with a private status
/// (599); the fairing registers a catcher for that status at `/`, which sends the kept response.
/// Should one of your catchers answer instead (a default catcher mounted at a longer base), the
/// fairing still replaces its response, as long as it keeps the status. Your own 401 and 403
/// catchers never see these refusals, as in the other adapters. `Option<AuthUser>` and
/// `Result<AuthUser, _>` are unaffected: their refusal never reaches a catcher.
#[derive(Clone)]
#[must_use]
pub struct AuthFairing {
    source: Source,
}

type Customize = dyn Fn(AuthBuilder) -> AuthBuilder + Send + Sync;

#[derive(Clone)]
enum Source {
    Auth(Auth),
    Config(Arc<Customize>),
}

impl fmt::Debug for AuthFairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Auth(auth) => f.debug_struct("AuthFairing").field("auth", auth).finish(),
            Source::Config(_) => f.debug_struct("AuthFairing").field("auth", &"from configuration").finish(),
        }
    }
}

impl AuthFairing {
    /// A fairing for this [`Auth`].
    pub fn new(auth: Auth) -> Self {
        AuthFairing { source: Source::Auth(auth) }
    }

    /// A fairing that builds its [`Auth`] at ignition from the `auth` table of Rocket's
    /// configuration (`Rocket.toml`, `ROCKET_AUTH`, or any figment given to
    /// [`rocket::custom`]); launch fails, with the reason logged, when it is invalid or a provider's
    /// discovery fails.
    ///
    /// ```toml
    /// [default.auth]
    /// app_url = "https://app.example.com"    # default: http://127.0.0.1:{port}
    /// session_key = "…"                      # base64, comma-separated, newest first
    /// # default_provider = "oidc"            # default: the first provider by name
    ///
    /// [default.auth.providers.oidc]          # one table per provider; the name is the route's
    /// issuer = "https://accounts.example.com"
    /// client_id = "my-app"
    /// client_secret = "…"
    /// scope = "openid email profile"         # optional
    /// # server_metadata_url = "…"            # instead of issuer
    /// # tenant = "…"                         # `microsoft` only
    /// ```
    ///
    /// The settings are those of [`AuthBuilder::from_env`] and
    /// [`Provider::from_env`](auth_core::Provider::from_env) (`app_url` is `APP_URL`,
    /// `providers.google.client_id` is `GOOGLE_CLIENT_ID`, …), so presets such as `google` or
    /// `github` need only `client_id` and `client_secret`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let op = auth_testkit::TestProvider::start().await?;
    /// use auth_rocket::AuthFairing;
    /// use rocket::figment::Figment;
    /// use rocket::local::asynchronous::Client;
    ///
    /// let figment = Figment::from(rocket::Config::debug_default())
    ///     .merge(("auth.providers.oidc.issuer", op.issuer()))
    ///     .merge(("auth.providers.oidc.client_id", op.client_id()))
    ///     .merge(("auth.providers.oidc.client_secret", op.client_secret()));
    /// let rocket = rocket::custom(figment).attach(AuthFairing::from_config()).mount("/", auth_rocket::routes());
    /// let client = Client::tracked(rocket).await?;
    /// let res = client.get("/auth/oidc/login").dispatch().await;
    /// assert_eq!(res.status().code, 302);
    /// # Ok(()) }
    /// ```
    pub fn from_config() -> Self {
        AuthFairing::from_config_with(|builder| builder)
    }

    /// [`AuthFairing::from_config`], then `customize` on the builder before it builds: for what
    /// the configuration does not say (a session store, a route prefix, more providers).
    ///
    /// ```
    /// use auth_core::MemoryStore;
    /// let fairing = auth_rocket::AuthFairing::from_config_with(|builder| builder.store(MemoryStore::new()));
    /// ```
    pub fn from_config_with(customize: impl Fn(AuthBuilder) -> AuthBuilder + Send + Sync + 'static) -> Self {
        AuthFairing { source: Source::Config(Arc::new(customize)) }
    }
}

/// What the fairing manages.
pub(crate) struct AuthState {
    auth: Auth,
}

/// The session lookup of a request; `None` when the fairing did not run.
struct Loaded(Option<SessionLookup>);

/// The answer a refusing guard left for the catcher.
#[derive(Default)]
struct Refusal(Mutex<Option<AuthResponse>>);

#[rocket::async_trait]
impl Fairing for AuthFairing {
    fn info(&self) -> Info {
        Info { name: "auth_rocket::AuthFairing", kind: Kind::Ignite | Kind::Request | Kind::Response | Kind::Singleton }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let auth = match &self.source {
            Source::Auth(auth) => auth.clone(),
            Source::Config(customize) => match config::build(rocket.figment(), customize.as_ref()).await {
                Ok(auth) => auth,
                Err(problem) => {
                    tracing::error!("auth_rocket::AuthFairing: {problem}");
                    return Err(rocket);
                }
            },
        };
        let mut catcher = Catcher::new(REFUSED.code, answer_refusal);
        catcher.name = Some("auth_rocket::refusal".into());
        Ok(rocket.manage(AuthState { auth }).register("/", vec![catcher]))
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        let req: &Request<'_> = req;
        if let Some(state) = req.rocket().state::<AuthState>() {
            req.local_cache_async(async { Loaded(Some(state.auth.session(&convert::view(req)).await)) }).await;
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        if res.status() == REFUSED
            && let Some(refusal) = take_refusal(req)
        {
            res.remove_header("content-type");
            res.merge(convert::response(refusal));
        }
        if let Some(lookup) = &req.local_cache(|| Loaded(None)).0 {
            convert::append_cookies(res, &lookup.set_cookies);
        }
    }
}

/// The [`Auth`] and the request's session lookup, when the fairing is attached.
pub(crate) fn context<'a>(req: &'a Request<'_>) -> Option<(&'a Auth, &'a SessionLookup)> {
    let state = req.rocket().state::<AuthState>()?;
    let lookup = req.local_cache(|| Loaded(None)).0.as_ref()?;
    Some((&state.auth, lookup))
}

/// The [`Auth`], when the fairing is attached.
pub(crate) fn auth<'a>(req: &'a Request<'_>) -> Option<&'a Auth> {
    req.rocket().state::<AuthState>().map(|state| &state.auth)
}

/// Keeps auth-core's answer for the catcher and fails the guard.
pub(crate) fn refuse<T>(req: &Request<'_>, answer: AuthResponse, why: AuthRejection) -> Outcome<T, AuthRejection> {
    *req.local_cache(Refusal::default).0.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
    Outcome::Error((REFUSED, why))
}

fn take_refusal(req: &Request<'_>) -> Option<AuthResponse> {
    req.local_cache(Refusal::default).0.lock().unwrap_or_else(PoisonError::into_inner).take()
}

fn answer_refusal<'r>(_status: Status, req: &'r Request<'_>) -> catcher::BoxFuture<'r> {
    Box::pin(async move { take_refusal(req).map(convert::response).ok_or(Status::InternalServerError) })
}

/// Logs that the fairing is missing, for a guard or route that finds no [`AuthState`].
pub(crate) fn missing_fairing(what: &str) {
    tracing::error!(
        "auth_rocket::AuthFairing is not attached: {what} needs `.attach(AuthFairing::new(auth))` on the Rocket instance"
    );
}

/// The guards' [`Sentinel`](rocket::Sentinel): aborts launch when the fairing is not attached.
pub(crate) fn sentinel_abort(rocket: &Rocket<Ignite>, guard: &str) -> bool {
    if rocket.state::<AuthState>().is_some() {
        return false;
    }
    missing_fairing(&format!("the request guard `{guard}`, used in a mounted route,"));
    true
}
