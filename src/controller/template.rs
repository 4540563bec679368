//! Secret templates: rendering `spec.secret.template` with MiniJinja in a sandbox (no loader,
//! so no file access; no function that reads the environment; fuel bounds the work a template
//! may do), and the hashes that let the operator tell, without the token, whether a templated
//! Secret still holds what it rendered.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::api::SecretTemplate;
use crate::ghes::Token;
use crate::ghes::redacted::sha256_hex;

/// The variables a template can use, in the order the documentation lists them.
pub const VARIABLES: &[&str] = &[
    "token",
    "login",
    "server",
    "host",
    "scopes",
    "authorizationId",
    "expiresAt",
];

/// Instructions a template may execute: plenty for any credential format, and a bound on a
/// template that loops for ever.
const FUEL: u64 = 50_000;

/// What a template is rendered from, apart from the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inputs {
    /// The account's login.
    pub login: String,
    /// The account's GHES address (`https://ghes.example.com`).
    pub server: String,
    /// The token's scopes, as GHES reports them.
    pub scopes: Vec<String>,
    /// The GHES authorization id.
    pub authorization_id: u64,
    /// When GHES expires the token (RFC 3339), or empty.
    pub expires_at: String,
}

impl Inputs {
    fn host(&self) -> String {
        url::Url::parse(&self.server)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| self.server.clone())
    }

    /// The value of a variable other than the token.
    fn value(&self, name: &str) -> Value {
        match name {
            "login" => Value::from(self.login.clone()),
            "server" => Value::from(self.server.clone()),
            "host" => Value::from(self.host()),
            "scopes" => Value::from(self.scopes.clone()),
            "authorizationId" => Value::from(self.authorization_id),
            "expiresAt" => Value::from(self.expires_at.clone()),
            _ => Value::UNDEFINED,
        }
    }
}

/// A template that cannot be used, naming the entry and what is wrong (never a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.secret.template.data[{key:?}]: {message}")]
pub struct TemplateError {
    /// The data key whose template failed.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn environment() -> Environment<'static> {
    // The builtin filters, tests and globals (`range`, `dict`, `namespace`) but not `debug`,
    // which prints the whole context; no loader, so `include` and `import` find nothing.
    let mut env = Environment::new();
    env.remove_global("debug");
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.add_filter("b64encode", |text: String| {
        data_encoding::BASE64.encode(text.as_bytes())
    });
    env
}

fn error(key: &str, error: &minijinja::Error) -> TemplateError {
    // The detail names the problem and the place in the template; it never holds a rendered
    // value (the debug info that could show variables is off).
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message = format!("{message}: {detail}");
    }
    if let Some(line) = error.line() {
        message = format!("{message} (line {line})");
    }
    TemplateError {
        key: key.to_owned(),
        message,
    }
}

/// The variables the templates use.
fn used(
    env: &Environment<'_>,
    template: &SecretTemplate,
) -> Result<BTreeSet<String>, TemplateError> {
    let mut used = BTreeSet::new();
    for (key, source) in &template.data {
        let compiled = env.template_from_str(source).map_err(|e| error(key, &e))?;
        for name in compiled.undeclared_variables(false) {
            if env.globals().any(|(global, _)| global == name) {
                continue;
            }
            if !VARIABLES.contains(&name.as_str()) {
                return Err(TemplateError {
                    key: key.clone(),
                    message: format!(
                        "unknown variable {name:?}; the variables are {}",
                        VARIABLES.join(", ")
                    ),
                });
            }
            used.insert(name);
        }
    }
    Ok(used)
}

/// Renders every entry of `template` for `token`.
pub fn render(
    template: &SecretTemplate,
    token: &Token,
    inputs: &Inputs,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let env = environment();
    used(&env, template)?;
    let mut context: BTreeMap<&str, Value> = VARIABLES
        .iter()
        .map(|name| (*name, inputs.value(name)))
        .collect();
    context.insert("token", Value::from(token.expose()));
    let context = Value::from(context);
    let mut data = BTreeMap::new();
    for (key, source) in &template.data {
        let rendered = env
            .template_from_str(source)
            .and_then(|compiled| compiled.render(&context))
            .map_err(|e| error(key, &e))?;
        if rendered.is_empty() {
            return Err(TemplateError {
                key: key.clone(),
                message: "renders to nothing".into(),
            });
        }
        data.insert(key.clone(), rendered);
    }
    Ok(data)
}

/// Checks the templates before anything is asked of GHES: they compile, use only known
/// variables, and render with a stand-in token.
pub fn check(template: &SecretTemplate, inputs: &Inputs) -> Result<(), TemplateError> {
    render(
        template,
        &Token::new("gho_0000000000000000000000000000000000000000"),
        inputs,
    )
    .map(drop)
}

/// A hash of everything a rendering depends on except the token: the type, the templates and
/// the values of the variables they use. When it changes, the Secret must be rendered again.
pub fn recipe_hash(template: &SecretTemplate, inputs: &Inputs) -> Result<String, TemplateError> {
    let env = environment();
    let used = used(&env, template)?;
    let mut text = format!("type={}\n", template.type_.as_str());
    for (key, source) in &template.data {
        text.push_str(&format!("data[{key:?}]={source:?}\n"));
    }
    for name in used.iter().filter(|name| *name != "token") {
        text.push_str(&format!("{name}={}\n", inputs.value(name)));
    }
    Ok(sha256_hex(text.as_bytes()))
}

/// A hash of a Secret's data as stored (keys and bytes), to tell it was not changed since the
/// operator wrote it.
pub fn data_hash<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> String {
    let mut bytes = Vec::new();
    for (key, value) in data {
        bytes.extend_from_slice(key.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&(value.len() as u64).to_be_bytes());
        bytes.extend_from_slice(value);
    }
    sha256_hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SecretType;

    fn template(type_: SecretType, data: &[(&str, &str)]) -> SecretTemplate {
        SecretTemplate {
            type_,
            data: data
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn inputs() -> Inputs {
        Inputs {
            login: "ci-bot".into(),
            server: "https://ghes.example.com".into(),
            scopes: vec!["repo".into(), "read:packages".into()],
            authorization_id: 42,
            expires_at: String::new(),
        }
    }

    const TOKEN: &str = "gho_abcdefabcdefabcdefabcdefabcdefabcdef12";

    #[test]
    fn basic_auth_and_netrc_and_env_style() {
        let t = template(
            SecretType::BasicAuth,
            &[
                ("username", "{{ login }}"),
                ("password", "{{ token }}"),
                (
                    "netrc",
                    "machine {{ host }} login {{ login }} password {{ token }}",
                ),
                ("GH_SCOPES", "{{ scopes | join(',') }}"),
                (
                    "GIT_CREDENTIALS",
                    "https://{{ login }}:{{ token }}@{{ host }}",
                ),
            ],
        );
        let data = render(&t, &Token::new(TOKEN), &inputs()).expect("render");
        assert_eq!(data["username"], "ci-bot");
        assert_eq!(data["password"], TOKEN);
        assert_eq!(
            data["netrc"],
            format!("machine ghes.example.com login ci-bot password {TOKEN}")
        );
        assert_eq!(data["GH_SCOPES"], "repo,read:packages");
        assert_eq!(
            data["GIT_CREDENTIALS"],
            format!("https://ci-bot:{TOKEN}@ghes.example.com")
        );
    }

    #[test]
    fn a_docker_config_parses_and_its_auth_decodes_to_login_and_token() {
        let t = template(
            SecretType::DockerConfigJson,
            &[(
                ".dockerconfigjson",
                r#"{"auths": {"containers.{{ host }}": {"username": {{ login | tojson }}, "password": {{ token | tojson }}, "auth": {{ (login ~ ":" ~ token) | b64encode | tojson }}}}}"#,
            )],
        );
        let data = render(&t, &Token::new(TOKEN), &inputs()).expect("render");
        let config: serde_json::Value =
            serde_json::from_str(&data[".dockerconfigjson"]).expect("JSON");
        let auth = config["auths"]["containers.ghes.example.com"]["auth"]
            .as_str()
            .expect("auth");
        let decoded = data_encoding::BASE64
            .decode(auth.as_bytes())
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("utf-8"),
            format!("ci-bot:{TOKEN}")
        );
    }

    #[test]
    fn errors_name_the_entry_and_never_a_value() {
        for (source, expect) in [
            ("{{ tokn }}", "unknown variable \"tokn\""),
            ("{{ token ", "syntax error"),
            ("{{ token | nosuchfilter }}", "unknown filter"),
            (
                "{% for i in range(100000) %}{{ token }}{% endfor %}",
                "fuel",
            ),
            ("{{ '' }}", "renders to nothing"),
        ] {
            let t = template(SecretType::Opaque, &[("entry", source)]);
            let problem = check(&t, &inputs()).expect_err(source);
            let text = problem.to_string();
            assert!(
                text.starts_with("spec.secret.template.data[\"entry\"]: "),
                "{text}"
            );
            assert!(text.contains(expect), "{source}: {text}");
            assert!(!text.contains("gho_"), "{text}");
        }
    }

    #[test]
    fn templates_read_no_environment_and_no_files() {
        for source in ["{{ env }}", "{% include '/etc/passwd' %}", "{{ debug() }}"] {
            let t = template(SecretType::Opaque, &[("entry", source)]);
            assert!(check(&t, &inputs()).is_err(), "{source}");
        }
    }

    #[test]
    fn the_recipe_changes_with_the_template_and_the_variables_it_uses_only() {
        let t = template(
            SecretType::Opaque,
            &[("url", "https://{{ login }}:{{ token }}@{{ host }}")],
        );
        let base = recipe_hash(&t, &inputs()).expect("hash");
        let mut other_scopes = inputs();
        other_scopes.scopes = vec!["gist".into()];
        assert_eq!(
            recipe_hash(&t, &other_scopes).expect("hash"),
            base,
            "scopes unused"
        );
        let mut other_login = inputs();
        other_login.login = "someone".into();
        assert_ne!(recipe_hash(&t, &other_login).expect("hash"), base);
        let changed = template(SecretType::Opaque, &[("url", "{{ token }}")]);
        assert_ne!(recipe_hash(&changed, &inputs()).expect("hash"), base);
    }
}
