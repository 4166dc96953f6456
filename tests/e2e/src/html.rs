//! Reading the provider's HTML pages the way a browser would: headings, links and forms.
//!
//! Why a real HTML parser (`scraper`, html5ever underneath) rather than regular expressions: the
//! provider's pages are regular today (tests/e2e/provider/README.md shows them), but a form is
//! more than its `<input>` tags. The logout page puts its submit buttons *outside* the `<form>`,
//! tied to it by `form="op.logoutForm"`; attribute values may be quoted either way or carry
//! entities (`&amp;` in a URL); a button without `type` is a submit button. A parser gets those
//! right once, here, and the flows read as "submit the form with this button" instead of text
//! surgery. The pages are parsed into plain owned data at once, so nothing of the parser's
//! (non-`Send`) tree is kept across an `.await`.

use scraper::{ElementRef, Html, Selector};

/// What the flows need from one HTML page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Text of the first `<h1>`, whitespace collapsed.
    pub h1: Option<String>,
    /// Every `<form>` of the page, in document order.
    pub forms: Vec<Form>,
    /// Every `<a href>` as (text, href), in document order.
    pub links: Vec<(String, String)>,
}

/// One form, with the controls that belong to it (inside it, or outside with `form="<id>"`).
#[derive(Debug, Clone, Default)]
pub struct Form {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `action` attribute as written (resolve it against the page URL).
    pub action: String,
    /// The `method`, lower-case (`get` when absent).
    pub method: String,
    /// The named, successful non-button controls with their current values.
    pub fields: Vec<(String, String)>,
    /// The submit buttons.
    pub buttons: Vec<Button>,
}

/// A submit button (`<button>` of type submit, or `<input type=submit>`).
#[derive(Debug, Clone, Default)]
pub struct Button {
    /// Its `name`; a button without a name adds nothing to the submission.
    pub name: Option<String>,
    /// Its `value` (empty when absent).
    pub value: String,
    /// Its visible text (or `value` for an `<input>`).
    pub text: String,
}

fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css}: {e}"))
}

fn text_of(el: ElementRef<'_>) -> String {
    el.text().collect::<Vec<_>>().join(" ").split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Page {
    /// Parses an HTML document.
    pub fn parse(html: &str) -> Page {
        let doc = Html::parse_document(html);
        let h1 = doc.select(&selector("h1")).next().map(text_of);
        let links = doc
            .select(&selector("a[href]"))
            .map(|a| (text_of(a), a.value().attr("href").unwrap_or_default().to_owned()))
            .collect();
        let controls = selector("input, button, select, textarea");
        let all_controls: Vec<ElementRef<'_>> = doc.select(&controls).collect();
        let forms = doc
            .select(&selector("form"))
            .map(|form| {
                let id = form.value().attr("id").map(str::to_owned);
                let inside: Vec<ElementRef<'_>> = form.select(&controls).collect();
                // Controls outside the form that name it in their `form` attribute belong to it too.
                let outside = all_controls.iter().copied().filter(|c| {
                    id.as_deref().is_some_and(|id| c.value().attr("form") == Some(id))
                        && !inside.iter().any(|i| i.id() == c.id())
                });
                let mut out = Form {
                    id: id.clone(),
                    action: form.value().attr("action").unwrap_or_default().to_owned(),
                    method: form.value().attr("method").unwrap_or("get").to_ascii_lowercase(),
                    ..Form::default()
                };
                for control in inside.iter().copied().chain(outside) {
                    add_control(&mut out, control);
                }
                out
            })
            .collect();
        Page { h1, forms, links }
    }

    /// The value of the hidden `prompt` input the provider's interaction pages carry
    /// (`login` or `consent`).
    pub fn prompt(&self) -> Option<&str> {
        self.forms.iter().flat_map(|f| &f.fields).find(|(n, _)| n == "prompt").map(|(_, v)| v.as_str())
    }

    /// The only form of the page, or the one with this `id`.
    pub fn form(&self, id: Option<&str>) -> &Form {
        let found: Vec<&Form> = self.forms.iter().filter(|f| id.is_none() || f.id.as_deref() == id).collect();
        match found.as_slice() {
            [one] => one,
            _ => panic!(
                "expected exactly one form{} on the page, found {}: {self:#?}",
                id.map_or(String::new(), |i| format!(" with id {i}")),
                found.len()
            ),
        }
    }

    /// The `href` of the link whose text contains `text`.
    pub fn link(&self, text: &str) -> Option<&str> {
        self.links.iter().find(|(t, _)| t.contains(text)).map(|(_, h)| h.as_str())
    }
}

fn add_control(form: &mut Form, control: ElementRef<'_>) {
    let el = control.value();
    let name = el.attr("name").map(str::to_owned);
    let value = el.attr("value").unwrap_or_default().to_owned();
    let kind = el.attr("type").unwrap_or("").to_ascii_lowercase();
    match el.name() {
        // A <button> without a type is a submit button.
        "button" if kind.is_empty() || kind == "submit" => {
            form.buttons.push(Button { name, value, text: text_of(control) });
        }
        "input" => match kind.as_str() {
            "submit" | "image" => form.buttons.push(Button { name, text: value.clone(), value }),
            "button" | "reset" | "file" => {}
            "checkbox" | "radio" => {
                if let (Some(name), true) = (name, el.attr("checked").is_some()) {
                    form.fields.push((name, if value.is_empty() { "on".into() } else { value }));
                }
            }
            _ => {
                if let Some(name) = name {
                    form.fields.push((name, value));
                }
            }
        },
        "textarea" => {
            if let Some(name) = name {
                form.fields.push((name, text_of(control)));
            }
        }
        _ => {} // <select>: none on the provider's pages.
    }
}

impl Form {
    /// The name/value pairs a browser would send when the user fills `values` in and clicks the
    /// button whose text contains `button` (`None`: submitted without a button, e.g. by script).
    pub fn submission(&self, values: &[(&str, &str)], button: Option<&str>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .fields
            .iter()
            .map(|(n, v)| {
                let filled = values.iter().find(|(name, _)| name == n).map(|(_, v)| (*v).to_owned());
                (n.clone(), filled.unwrap_or_else(|| v.clone()))
            })
            .collect();
        for (name, _) in values {
            assert!(self.fields.iter().any(|(n, _)| n == name), "the form has no field {name}: {self:#?}");
        }
        if let Some(text) = button {
            let button = self
                .buttons
                .iter()
                .find(|b| b.text.contains(text))
                .unwrap_or_else(|| panic!("the form has no button {text:?}: {self:#?}"));
            if let Some(name) = &button.name {
                out.push((name.clone(), button.value.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_providers_logout_page_with_buttons_outside_the_form() {
        let page = Page::parse(
            r#"<h1>Do you want to sign-out from localhost:4400?</h1>
            <form id="op.logoutForm" method="post" action="http://localhost:4400/session/end/confirm"><input type="hidden" name="xsrf" value="abc"/></form>
            <button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
            <button type="submit" form="op.logoutForm">No, stay signed in</button>"#,
        );
        let form = page.form(Some("op.logoutForm"));
        assert_eq!(form.method, "post");
        assert_eq!(form.submission(&[], Some("Yes")), [("xsrf".into(), "abc".into()), ("logout".into(), "yes".into())]);
        assert_eq!(form.submission(&[], Some("No")), [("xsrf".to_owned(), "abc".to_owned())]);
    }

    #[test]
    fn reads_the_login_page() {
        let page = Page::parse(
            r#"<h1>Sign-in</h1><form autocomplete="off" action="http://localhost:4400/interaction/u1" method="post">
              <input type="hidden" name="prompt" value="login"/>
              <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
              <input required type="password" name="password" placeholder="and password" >
              <button type="submit" class="login login-submit">Sign-in</button></form>
            <div class="login-help"><a href="http://localhost:4400/interaction/u1/abort?a=1&amp;b=2">[ Cancel ]</a></div>"#,
        );
        assert_eq!(page.prompt(), Some("login"));
        assert_eq!(page.h1.as_deref(), Some("Sign-in"));
        assert_eq!(page.link("Cancel"), Some("http://localhost:4400/interaction/u1/abort?a=1&b=2"));
        let sent = page.form(None).submission(&[("login", "alice"), ("password", "pw")], Some("Sign-in"));
        let sent: Vec<(&str, &str)> = sent.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(sent, [("prompt", "login"), ("login", "alice"), ("password", "pw")]);
    }
}
