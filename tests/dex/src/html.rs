//! Reading the little of HTML the browser stand-in needs from Dex's pages: the
//! forms (action, method and named inputs, with attributes in any order and
//! any quoting, entities decoded) and the visible text, for error messages.
//! Dex's pages are server-rendered templates, so no script has to run.

/// One `<form>` of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Form {
    /// The `action` attribute as written (entities decoded); empty if absent.
    pub(crate) action: String,
    /// The `method`, lower-cased; `get` if absent.
    pub(crate) method: String,
    /// The named `<input>`s, in order: (name, value).
    pub(crate) inputs: Vec<(String, String)>,
}

impl Form {
    pub(crate) fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|(input, _)| input == name)
    }
}

/// Every form of `html`, in order.
pub(crate) fn forms(html: &str) -> Vec<Form> {
    let mut forms: Vec<Form> = Vec::new();
    let mut open = false;
    for tag in tags(html) {
        match tag.name.as_str() {
            "form" => {
                forms.push(Form {
                    action: tag.attribute("action").unwrap_or_default(),
                    method: tag.attribute("method").unwrap_or_else(|| "get".to_owned()).to_ascii_lowercase(),
                    inputs: Vec::new(),
                });
                open = true;
            }
            "/form" => open = false,
            "input" | "button" if open => {
                if let (Some(name), Some(form)) = (tag.attribute("name"), forms.last_mut()) {
                    form.inputs.push((name, tag.attribute("value").unwrap_or_default()));
                }
            }
            _ => {}
        }
    }
    forms
}

/// The visible text of `html`: tags, scripts and styles removed, entities
/// decoded, whitespace collapsed.
pub(crate) fn text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        out.push(' ');
        let after = &rest[start..];
        let lower = after.get(..7).unwrap_or(after).to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            "</script>"
        } else if lower.starts_with("<style") {
            "</style>"
        } else {
            ">"
        };
        let lowered = after.to_ascii_lowercase();
        rest = match lowered.find(skip_to) {
            Some(end) => &after[end + skip_to.len()..],
            None => "",
        };
    }
    out.push_str(rest);
    decode_entities(&out).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One start or end tag: its lower-cased name (`/form` for an end tag) and
/// its attributes as written.
struct Tag {
    name: String,
    attributes: Vec<(String, String)>,
}

impl Tag {
    fn attribute(&self, name: &str) -> Option<String> {
        self.attributes.iter().find(|(attribute, _)| attribute == name).map(|(_, value)| decode_entities(value))
    }
}

/// The tags of `html`, skipping comments and the contents of scripts.
fn tags(html: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    let bytes = html.as_bytes();
    let mut at = 0;
    while let Some(offset) = html[at..].find('<') {
        at += offset + 1;
        if html[at..].starts_with("!--") {
            at = html[at..].find("-->").map_or(html.len(), |end| at + end + 3);
            continue;
        }
        let name_end = html[at..]
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || (c == '/' && !html[at..].starts_with('/')))
            .map_or(html.len(), |end| at + end);
        let name = html[at..name_end].to_ascii_lowercase();
        let mut attributes = Vec::new();
        let mut i = name_end;
        // Attributes: name, optionally `=` and a quoted or bare value.
        loop {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' {
                break;
            }
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
                i += 1;
            }
            let attribute = html[start..i].to_ascii_lowercase();
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                    let quote = bytes[i];
                    let value_start = i + 1;
                    let value_end = bytes[value_start..]
                        .iter()
                        .position(|&b| b == quote)
                        .map_or(bytes.len(), |end| value_start + end);
                    value = html[value_start..value_end].to_owned();
                    i = (value_end + 1).min(bytes.len());
                } else {
                    let value_start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = html[value_start..i].to_owned();
                }
            }
            if !attribute.is_empty() {
                attributes.push((attribute, value));
            }
        }
        at = i.min(html.len());
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            at = html[at..].to_ascii_lowercase().find(&close).map_or(html.len(), |end| at + end);
        }
        tags.push(Tag { name, attributes });
    }
    tags
}

/// `text` with HTML's character references decoded (the named ones Go's
/// templates emit, and every numeric one).
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let character = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => entity.strip_prefix('#').and_then(|number| {
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => number.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            character.map(|character| (character, end))
        });
        match decoded {
            Some((character, end)) => {
                out.push(character);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_read_whatever_the_attribute_order_and_quoting() {
        let html = r#"<html><!-- <form action="/commented"> --><script>var s = "<form action='/script'>";</script>
            <FORM class=x ACTION='/dex/auth/local/login?back=&amp;state=abc&#39;d' method=POST>
              <input tabindex="1" required id="login" name="login" type="text"/>
              <input type="password" name=password>
              <input type=hidden value="a&quot;b" name="csrf">
            </form>
            <form action="/other"><input name="user_code" value="ABCD-EFGH"></form>"#;
        let forms = forms(html);
        assert_eq!(forms.len(), 2, "{forms:?}");
        assert_eq!(forms[0].action, "/dex/auth/local/login?back=&state=abc'd");
        assert_eq!(forms[0].method, "post");
        assert_eq!(
            forms[0].inputs,
            [("login".into(), String::new()), ("password".into(), String::new()), ("csrf".into(), "a\"b".into())]
        );
        assert!(forms[1].has_input("user_code"));
        assert_eq!(forms[1].method, "get");
    }

    #[test]
    fn text_drops_tags_and_scripts_and_decodes_entities() {
        let html = "<h2>Bad&nbsp;Request</h2>\n<script>alert('x')</script><p>Unregistered redirect_uri (&#34;http://x&#34;).</p>";
        assert_eq!(text(html), "Bad Request Unregistered redirect_uri (\"http://x\").");
    }
}
