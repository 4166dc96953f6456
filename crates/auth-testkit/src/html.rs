//! The few HTML pages the provider shows. No external resources, no scripts except the
//! form_post auto-submit.

use crate::model::TestUser;
use crate::util::html_escape as esc;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;\
padding:0 1rem;color:#222}h1{font-size:1.4rem}form{margin:.5rem 0}button{width:100%;\
padding:.7rem;font-size:1rem;border:1px solid #888;border-radius:.4rem;background:#f4f4f4;\
cursor:pointer;text-align:left}button.deny{background:#fff;color:#a00;text-align:center}\
small{color:#666}.box{border:1px solid #ddd;border-radius:.5rem;padding:1rem}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n",
        title = esc(title),
    )
}

/// The dev-mode login page: one button per user, and a Deny button.
pub(crate) fn login_page(request_id: &str, client_id: &str, scope: &str, users: &[TestUser]) -> String {
    let mut body = format!(
        "<h1>Sign in to <code>{client}</code></h1>\n\
         <p><small>auth-testkit development provider. Scope: <code>{scope}</code></small></p>\n\
         <div class=\"box\">\n",
        client = esc(client_id),
        scope = esc(scope),
    );
    for user in users {
        body.push_str(&format!(
            "<form method=\"post\" action=\"/authorize/approve\">\
             <input type=\"hidden\" name=\"request_id\" value=\"{id}\">\
             <input type=\"hidden\" name=\"sub\" value=\"{sub}\">\
             <button type=\"submit\" name=\"action\" value=\"approve\">\
             <strong>{name}</strong><br><small>{email} &middot; sub {sub}</small></button></form>\n",
            id = esc(request_id),
            sub = esc(&user.sub),
            name = esc(&user.name),
            email = esc(&user.email),
        ));
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/authorize/deny\">\
         <input type=\"hidden\" name=\"request_id\" value=\"{id}\">\
         <button class=\"deny\" type=\"submit\">Deny</button></form>\n</div>",
        id = esc(request_id),
    ));
    page("Sign in: auth-testkit", &body)
}

/// The inline script of the form_post page (allowed by its hash in the page's CSP).
pub(crate) const FORM_POST_SCRIPT: &str = "document.getElementById(\"form_post\").submit()";

/// The `response_mode=form_post` page (OAuth 2.0 Form Post Response Mode): a form that
/// submits itself, with a button for clients without JavaScript.
pub(crate) fn form_post_page(action: &str, fields: &[(String, String)]) -> String {
    let mut inputs = String::new();
    for (name, value) in fields {
        inputs.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", esc(name), esc(value)));
    }
    let body = format!(
        "<form method=\"post\" action=\"{action}\" id=\"form_post\">\n{inputs}\
         <noscript><button type=\"submit\">Continue</button></noscript></form>\n\
         <script>{FORM_POST_SCRIPT}</script>",
        action = esc(action),
    );
    page("Continue", &body)
}

/// A plain message page (logged out, expired request, …).
pub(crate) fn message_page(title: &str, message: &str) -> String {
    page(title, &format!("<h1>{}</h1>\n<p>{}</p>", esc(title), esc(message)))
}
