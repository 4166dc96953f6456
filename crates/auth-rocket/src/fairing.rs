//! The fairing: it loads the session of every request, and writes what auth-core asks for into the
//! response.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use auth_core::{Auth, AuthBuilder, AuthResponse, SessionLookup};
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::Status;
use rocket::request::Outcome;
use rocket::{Build, Data, Ignite, Orbit, Request, Response, Rocket};

use crate::{AuthRejection, config, convert};

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
/// refusing guard keeps that response in the request-local cache and fails with the status it
/// stands for (401 without a login, 403 when a policy refuses; Rocket logs
/// `Outcome: Error(401 Unauthorized)`); whichever catcher then answers, yours or Rocket's default,
/// the fairing's response hook replaces its response with auth-core's, as in the other adapters.
/// `Option<AuthUser>` and `Result<AuthUser, _>` are unaffected: their refusal never reaches a
/// catcher (only a handler of yours that itself answers the same 401 or 403 after such a refusal
/// gets auth-core's answer instead).
///
/// # Checks at launch
/// Ignition fails, with the fix logged, when `auth_rocket::routes()` is mounted where the
/// `Auth` does not send browsers (`.mount("/account", auth_rocket::routes())` with the default
/// prefix `/auth`: give the `Auth` the prefix `/account/auth`, or mount them at `/`). At liftoff,
/// a loopback `APP_URL` whose port is not the one Rocket listens on (the callback would go to a
/// dead port) is logged as an error naming both, and Rocket is shut down.
#[derive(Clone)]
#[must_use]
pub struct AuthFairing {
    source: Source,
    port_check: bool,
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
        AuthFairing { source: Source::Auth(auth), port_check: true }
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
        AuthFairing { source: Source::Config(Arc::new(customize)), port_check: true }
    }

    /// Skips the liftoff check that a loopback `APP_URL` names Rocket's own port: for an app
    /// behind a local proxy or load balancer on another port.
    pub fn allow_port_mismatch(mut self) -> Self {
        self.port_check = false;
        self
    }
}

/// What the fairing manages.
pub(crate) struct AuthState {
    auth: Auth,
}

/// The session lookup of a request; `None` when the fairing did not run.
struct Loaded(Option<SessionLookup>);

/// The answer a refusing guard left for the response hook, with the status it failed with.
#[derive(Default)]
struct Refusal(Mutex<Option<(Status, AuthResponse)>>);

#[rocket::async_trait]
impl Fairing for AuthFairing {
    fn info(&self) -> Info {
        Info {
            name: "auth_rocket::AuthFairing",
            kind: Kind::Ignite | Kind::Liftoff | Kind::Request | Kind::Response | Kind::Singleton,
        }
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
        if let Err(err) = check_mounts(&rocket, &auth) {
            tracing::error!("auth_rocket::AuthFairing: {err}");
            return Err(rocket);
        }
        Ok(rocket.manage(AuthState { auth }))
    }

    async fn on_liftoff(&self, rocket: &Rocket<Orbit>) {
        let Some(state) = rocket.state::<AuthState>() else { return };
        if !self.port_check {
            return;
        }
        if let Err(problem) = state.auth.check_listen_port(rocket.config().port, "ROCKET_PORT") {
            tracing::error!("auth_rocket::AuthFairing: {problem}; shutting down");
            rocket.shutdown().notify();
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        let req: &Request<'_> = req;
        if let Some(state) = req.rocket().state::<AuthState>() {
            req.local_cache_async(async { Loaded(Some(state.auth.session(&convert::view(req)).await)) }).await;
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        if let Some(refusal) = take_refusal(req, res.status()) {
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

/// Keeps auth-core's answer for the response hook and fails the guard with the status the
/// refusal stands for.
pub(crate) fn refuse<T>(req: &Request<'_>, answer: AuthResponse, why: AuthRejection) -> Outcome<T, AuthRejection> {
    // The status the answer stands for; a redirect to the login stands for 401.
    let status = if (400..600).contains(&answer.status) { Status::new(answer.status) } else { Status::Unauthorized };
    *req.local_cache(Refusal::default).0.lock().unwrap_or_else(PoisonError::into_inner) = Some((status, answer));
    Outcome::Error((status, why))
}

/// The kept answer, when the response carries the status the guard failed with (a catcher
/// answered the refusal).
fn take_refusal(req: &Request<'_>, status: Status) -> Option<AuthResponse> {
    let mut kept = req.local_cache(Refusal::default).0.lock().unwrap_or_else(PoisonError::into_inner);
    match kept.take() {
        Some((refused, answer)) if refused == status => Some(answer),
        _ => None,
    }
}

/// The full path prefixes under which `auth_rocket::routes()` is mounted.
fn mounted_prefixes(rocket: &Rocket<Build>) -> Vec<String> {
    let mut prefixes: Vec<String> = rocket
        .routes()
        .filter(|r| r.name.as_deref() == Some(crate::routes::ROUTE_NAME))
        .filter_map(|r| r.uri.origin.path().as_str().strip_suffix("/<rest..>").map(str::to_owned))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// Every mount of the auth routes must be where the `Auth` sends browsers.
fn check_mounts(rocket: &Rocket<Build>, auth: &Auth) -> Result<(), auth_core::Error> {
    for mounted in mounted_prefixes(rocket) {
        auth.check_routes_prefix(&mounted, "auth_rocket::routes_at")?;
    }
    Ok(())
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
