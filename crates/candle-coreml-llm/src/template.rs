//! Chat templates: the Jinja `chat_template` of a Hugging Face tokenizer,
//! rendered with minijinja the way transformers' `apply_chat_template` does
//! (trim_blocks, lstrip_blocks, Python string and dict methods,
//! `raise_exception`, `strftime_now`, `tojson` without HTML escaping).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant` (or whatever the template knows).
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Options of one rendering.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplateOptions {
    /// Open an assistant turn at the end (what generation needs).
    pub add_generation_prompt: bool,
    /// `enable_thinking` (Qwen 3); `None` leaves it undefined.
    pub enable_thinking: Option<bool>,
    /// Further variables (transformers' `**kwargs`).
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A compiled chat template with the tokenizer's special-token strings.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: PathBuf,
    specials: BTreeMap<String, String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .finish()
    }
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

fn tojson(
    value: Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let text = match indent {
        Some(n) => {
            let ind = vec![b' '; n];
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&ind);
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&json, &mut ser)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            String::from_utf8_lossy(&buf).into_owned()
        }
        None => python_json(&json),
    };
    Ok(Value::from_safe_string(text))
}

/// `json.dumps` spacing: `", "` and `": "` separators.
fn python_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(python_json).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        serde_json::Value::from(k.as_str()),
                        python_json(v)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// `strftime_now(fmt)`: the current UTC date and time, for the directives
/// chat templates use (`%d %b %B %m %Y %y %H %M %S %%`).
fn strftime_now(fmt: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(&fmt, secs)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn strftime(fmt: &str, secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('b') => out.push_str(&MONTHS[m as usize - 1][..3]),
            Some('B') => out.push_str(MONTHS[m as usize - 1]),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem % 3600 / 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

impl ChatTemplate {
    /// Compiles `source` (read from `path`, named in errors). `specials`
    /// are the tokenizer's special-token strings (`bos_token`, `eos_token`...).
    pub fn new(
        source: String,
        path: impl Into<PathBuf>,
        specials: BTreeMap<String, String>,
    ) -> Result<Self> {
        let path = path.into();
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::Template {
                path: path.clone(),
                message: describe(&e),
            })?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source)
            .map_err(|e| Error::Template {
                path: path.clone(),
                message: describe(&e),
            })?;
        Ok(Self {
            env,
            source: path,
            specials,
        })
    }

    /// Where the template came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Renders `messages`.
    pub fn render(&self, messages: &[Message], opts: &TemplateOptions) -> Result<String> {
        let mut ctx: BTreeMap<String, Value> = self
            .specials
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        ctx.insert(
            "messages".into(),
            Value::from(minijinja::value::Serde(messages)),
        );
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(opts.add_generation_prompt),
        );
        if let Some(t) = opts.enable_thinking {
            ctx.insert("enable_thinking".into(), Value::from(t));
        }
        for (k, v) in &opts.extra {
            ctx.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        let tmpl = self.env.get_template("chat").map_err(|e| Error::Template {
            path: self.source.clone(),
            message: describe(&e),
        })?;
        tmpl.render(ctx).map_err(|e| Error::Template {
            path: self.source.clone(),
            message: describe(&e),
        })
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpl(src: &str) -> ChatTemplate {
        let specials = [("bos_token".to_string(), "<s>".to_string())].into();
        ChatTemplate::new(src.into(), "t.jinja", specials).unwrap()
    }

    #[test]
    fn python_methods_and_blocks() {
        // trim_blocks/lstrip_blocks, str.split/lstrip/startswith, namespace, [::-1]
        let t = tmpl(
            "{{ bos_token }}{% set ns = namespace(n=0) %}\n  {% for m in messages[::-1] %}\n{% set ns.n = ns.n + 1 %}{{ m.role }}:{{ m.content.split('</think>')[-1].lstrip('\\n') }}{% if m.content.startswith('x') %}!{% endif %};\n  {% endfor %}\n{{ ns.n }}{% if add_generation_prompt %}>{% endif %}",
        );
        let msgs = [Message::user("xa"), Message::assistant("t</think>\n\nb")];
        let out = t
            .render(
                &msgs,
                &TemplateOptions {
                    add_generation_prompt: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(out, "<s>assistant:b;\nuser:xa!;\n2>");
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_template_errors() {
        let t = tmpl("{{ raise_exception('only user and assistant roles') }}");
        let e = t
            .render(&[], &TemplateOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only user and assistant roles") && e.contains("t.jinja"),
            "{e}"
        );
        let e = ChatTemplate::new("{% for %}".into(), "x.json", BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.json"), "{e}");
    }

    #[test]
    fn tojson_like_python() {
        let t = tmpl("{{ {'a': [1, 'x<y'], 'b': none} | tojson }}");
        assert_eq!(
            t.render(&[], &TemplateOptions::default()).unwrap(),
            r#"{"a": [1, "x<y"], "b": null}"#
        );
    }

    #[test]
    fn strftime_directives() {
        // 2024-07-26 13:05:09 UTC
        assert_eq!(
            strftime("%d %b %Y %H:%M:%S %B %m %y %%", 1_722_000_309),
            "26 Jul 2024 13:25:09 July 07 24 %"
        );
        assert_eq!(strftime("%Y-%m-%d", 0), "1970-01-01");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }
}
