//! Masking of secrets in text that is about to be recorded: container environment values,
//! `docker_init.sh` output, error messages that quote a child's output.
//!
//! Pure (no I/O): one function, [`redact`], used wherever text from outside is stored in
//! the ledger, so that a secret is masked the same way everywhere and the ledger, its
//! export and the reports never hold one. Only the secret part is replaced with [`MASK`];
//! the rest stays readable (`mysql://u:***@h`, `-Dpassword=*** -Xmx2g`).
//!
//! Recognised forms (case-insensitive unless said otherwise):
//! - userinfo in a URL: `scheme://user:PW@host` (up to the last `@` before the path);
//! - `KEY=VALUE` and `KEY: VALUE` where KEY ends with `password`, `passwd`, `passphrase`
//!   or `pwd` (any prefix: `PGPASSWORD`, `-Dpassword`, `--password`, `db.password`), or
//!   whose last part (after `_`, `.` or `-`) is `pass`, `secret`, `token`, `credential(s)`
//!   or a `api`/`access`/`secret`/`private` key; the value may be quoted;
//! - `Authorization: Bearer|Basic VALUE`;
//! - the MySQL client's attached password, `-pPW` (case-sensitive: `-P` is the port), on a
//!   line that names a MySQL client (`mysql`, `mariadb`, `obclient`) or passes `-u`;
//! - SQL: `IDENTIFIED [WITH plugin] BY 'PW'` and `PASSWORD('PW')`.
//!
//! False-positive guards, decided on purpose: a key only counts when it *ends* with the
//! secret word, so `PASSWORD_POLICY_ENABLED=true`, `token_ttl=3600` or
//! `password_file=/run/pw` stay readable (a path is not the secret); values that are only a
//! yes/no word (`using password: YES` in MySQL's access-denied message) or already masked
//! stay as they are. Masking a harmless value costs little (`OLDPWD=/root` is masked);
//! missing a secret is the failure this module exists to prevent, so in doubt it masks.
//! What it cannot see is a bare secret under a plain name (`DB_CONN=hunter2`): environment
//! variables whose *name* looks secret are withheld altogether ([`looks_secret`]).

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What a masked secret is replaced with.
pub const MASK: &str = "***";

/// True when an environment variable's name suggests a secret value (password, token,
/// key, credential). Deliberately broad: a withheld harmless value costs nothing.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASS",
        "PWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "KEY",
        "AUTH",
        "CERT",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// The value of environment variable `name` as it may be recorded: `None` when the name
/// looks secret (withheld), otherwise the value with any secret inside masked.
pub fn env_value(name: &str, value: &str) -> Option<String> {
    (!looks_secret(name)).then(|| redact(value).into_owned())
}

/// `scheme://user:PASSWORD@`: the password runs to the last `@` before the path.
static URL_USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'"]*:)(?P<val>[^\s/?#'"]+)(?P<post>@)"#,
    )
    .expect("valid regex")
});

/// A quoted (possibly cut off) or bare value.
const VALUE: &str = r#"(?P<val>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s&;'"]+)"#;

/// `KEY=VALUE` / `KEY: VALUE` with a key that ends with a secret word.
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    let key = r"(?:[\w.\-]*(?:password|passwd|passphrase|pwd)|(?:[\w.\-]*[_.\-])?(?:pass|secret|token|credentials?|(?:api|access|secret|private)[_\-]?key))";
    Regex::new(&format!(
        r#"(?i)(?P<pre>(?:^|[^\w.\-])["']?{key}["']?[ \t]*[=:][ \t]*){VALUE}"#
    ))
    .expect("valid regex")
});

/// `Authorization: Bearer VALUE`.
static AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)(?P<pre>\bauthorization["']?[ \t]*[=:][ \t]*(?:(?:bearer|basic|digest|token)[ \t]+)?){VALUE}"#
    ))
    .expect("valid regex")
});

/// SQL: `IDENTIFIED [WITH plugin] BY [PASSWORD] 'PW'` and `PASSWORD('PW')`.
static SQL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)(?P<pre>\bIDENTIFIED\s+(?:WITH\s+\S+\s+)?(?:BY|AS)\s+(?:PASSWORD\s+)?|\b(?:OLD_)?PASSWORD\s*\(\s*){VALUE}"#
    ))
    .expect("valid regex")
});

/// The MySQL client's `-pPASSWORD` (lower-case `p`; only on a client's command line).
static CLIENT_P: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r#"(?P<pre>(?:^|\s)-p){VALUE}"#)).expect("valid regex"));

/// A line that runs a MySQL-protocol client, where `-pX` means a password.
static CLIENT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)mysql|mariadb|obclient|(?:^|\s)(?:-u|--user)").expect("valid regex")
});

/// Masks every secret [`redact`]'s module docs list; the rest of `text` is unchanged.
/// Idempotent: masking masked text changes nothing.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for re in [&*URL_USERINFO, &*SQL_PASSWORD, &*AUTHORIZATION, &*KEY_VALUE] {
        if let Cow::Owned(s) = re.replace_all(&out, masked) {
            out = Cow::Owned(s);
        }
    }
    if out.contains("-p") && CLIENT_LINE.is_match(&out) {
        let mut lines = String::with_capacity(out.len());
        for line in out.split_inclusive('\n') {
            if CLIENT_LINE.is_match(line) {
                lines.push_str(&CLIENT_P.replace_all(line, masked));
            } else {
                lines.push_str(line);
            }
        }
        if lines != *out {
            out = Cow::Owned(lines);
        }
    }
    out
}

/// The replacement for one match: the text before the value, the value masked (its quotes
/// kept), the text after it; unless the value is no secret (see the module docs).
fn masked(c: &Captures<'_>) -> String {
    let pre = &c["pre"];
    let val = c.name("val").map_or("", |m| m.as_str());
    let post = c.name("post").map_or("", |m| m.as_str());
    let (open, inner, close) = match val.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let rest = &val[1..];
            match rest.strip_suffix(q) {
                Some(inner) => (q.to_string(), inner, q.to_string()),
                None => (q.to_string(), rest, String::new()),
            }
        }
        _ => (String::new(), val, String::new()),
    };
    let word = inner.trim_end_matches([')', ',', '.', ']', '}']);
    let harmless = word.is_empty()
        || word.chars().all(|c| c == '*')
        || ["yes", "no", "true", "false"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w));
    if harmless {
        format!("{pre}{val}{post}")
    } else {
        format!("{pre}{open}{MASK}{close}{post}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, what is recorded). Positive cases mask only the secret; negative cases are
    /// the false-positive guards and must come back unchanged.
    const FORMS: &[(&str, &str)] = &[
        // URLs.
        ("mysql://u:pw@h", "mysql://u:***@h"),
        ("mysql://u:pw@h:3306/db?x=1", "mysql://u:***@h:3306/db?x=1"),
        (
            "jdbc:mysql://oms:p@ss@10.0.0.1/db",
            "jdbc:mysql://oms:***@10.0.0.1/db",
        ),
        ("redis://:tok@cache:6379", "redis://:***@cache:6379"),
        (
            "see http://u:a@h and ftp://v:b@g",
            "see http://u:***@h and ftp://v:***@g",
        ),
        ("mysql://oms@h:3306", "mysql://oms@h:3306"),
        ("http://h:8080/path@x", "http://h:8080/path@x"),
        // KEY=VALUE / KEY: VALUE.
        ("-Xmx2g -Dpassword=s3 -Da=b", "-Xmx2g -Dpassword=*** -Da=b"),
        (
            "-Dspring.datasource.password=s3",
            "-Dspring.datasource.password=***",
        ),
        ("--password=s3", "--password=***"),
        ("PASSWORD=s3", "PASSWORD=***"),
        (
            "MYSQL_ROOT_PASSWORD=s3 next",
            "MYSQL_ROOT_PASSWORD=*** next",
        ),
        ("PGPASSWORD='a b c'", "PGPASSWORD='***'"),
        ("pwd=s3", "pwd=***"),
        ("db.passwd: s3", "db.passwd: ***"),
        ("secret=s3", "secret=***"),
        ("client_secret=s3", "client_secret=***"),
        ("access_token=s3&x=1", "access_token=***&x=1"),
        ("AWS_SECRET_ACCESS_KEY=s3", "AWS_SECRET_ACCESS_KEY=***"),
        ("api-key: s3", "api-key: ***"),
        ("db.pass=s3", "db.pass=***"),
        (
            r#"{"password": "s3", "user": "u"}"#,
            r#"{"password": "***", "user": "u"}"#,
        ),
        (r#"password="cut off"#, r#"password="***"#),
        (
            "jdbc:mysql://h/db?user=u&password=s3",
            "jdbc:mysql://h/db?user=u&password=***",
        ),
        ("opts=-Dpassword=s3", "opts=-Dpassword=***"),
        (
            "Authorization: Bearer eyJhbGci.x.y",
            "Authorization: Bearer ***",
        ),
        // Client command lines.
        (
            "mysql -h10.0.0.1 -P3306 -uroot -ps3 -e 'select 1'",
            "mysql -h10.0.0.1 -P3306 -uroot -p*** -e 'select 1'",
        ),
        (
            "obclient -h h -u root@sys -p's3 x'",
            "obclient -h h -u root@sys -p'***'",
        ),
        ("mysql -u root -p", "mysql -u root -p"),
        ("mkdir -p/tmp/x", "mkdir -p/tmp/x"),
        ("find . -print", "find . -print"),
        // SQL.
        (
            "CREATE USER 'u'@'%' IDENTIFIED BY 's3'",
            "CREATE USER 'u'@'%' IDENTIFIED BY '***'",
        ),
        (
            "ALTER USER u IDENTIFIED WITH mysql_native_password BY \"s3\";",
            "ALTER USER u IDENTIFIED WITH mysql_native_password BY \"***\";",
        ),
        (
            "SET PASSWORD FOR u = PASSWORD('s3')",
            "SET PASSWORD FOR u = PASSWORD('***')",
        ),
        // Guards: the key does not end with the secret word, or the value is no secret.
        (
            "PASSWORD_POLICY_ENABLED=true",
            "PASSWORD_POLICY_ENABLED=true",
        ),
        ("token_ttl=3600", "token_ttl=3600"),
        ("password_file=/run/pw", "password_file=/run/pw"),
        ("bypass=1 compass=n", "bypass=1 compass=n"),
        (
            "Access denied for user 'u'@'h' (using password: YES)",
            "Access denied for user 'u'@'h' (using password: YES)",
        ),
        ("password=***", "password=***"),
        ("password=", "password="),
        ("OMS_HOST_IP=10.0.0.5", "OMS_HOST_IP=10.0.0.5"),
        ("time: 12:30:00", "time: 12:30:00"),
        (
            "【结束】全部初始化步骤执行成功",
            "【结束】全部初始化步骤执行成功",
        ),
    ];

    #[test]
    fn forms() {
        for (input, want) in FORMS {
            let got = redact(input);
            assert_eq!(got, *want, "input: {input}");
            assert_eq!(redact(&got), got, "not idempotent on {input}");
        }
    }

    #[test]
    fn multi_line_output_masks_each_line() {
        let text = "step 1\nmysql -uroot -pA1 db\nfind . -print\nurl=mysql://u:B2@h\n";
        assert_eq!(
            redact(text),
            "step 1\nmysql -uroot -p*** db\nfind . -print\nurl=mysql://u:***@h\n"
        );
    }

    #[test]
    fn env_values() {
        assert_eq!(env_value("OMS_META_PASSWORD", "x"), None);
        assert_eq!(
            env_value("DB_URL", "mysql://u:x@h").as_deref(),
            Some("mysql://u:***@h")
        );
        assert_eq!(env_value("LANG", "C.UTF-8").as_deref(), Some("C.UTF-8"));
    }
}
