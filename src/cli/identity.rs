//! Who records: the operator and host every record carries, and the node identity the
//! witness is given. A leaf of the CLI: it imports nothing of the other command modules.

/// Who records: operator and host, overridable for hermetic tests.
///
/// The operator is the account of the process's real uid from the system's user database
/// (the environment's `USER`/`LOGNAME` are only claims, and are unset under many service
/// managers), with `SUDO_USER` beside it when sudo ran us: see [`operator_name`].
pub fn identity() -> (String, String) {
    let operator = std::env::var("OMS_UPGRADE_OPERATOR").unwrap_or_else(|_| {
        // SAFETY: getuid cannot fail and has no preconditions.
        let uid = unsafe { libc::getuid() };
        operator_name(
            uid,
            account_name(uid).as_deref(),
            std::env::var("SUDO_USER").ok().as_deref(),
        )
    });
    let host = std::env::var("OMS_UPGRADE_HOST")
        .ok()
        .or_else(|| {
            hostname::get()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    (operator, host)
}

/// The operator as recorded: the account of `uid` (or `uid N` when the user database has
/// none, never "unknown"), preceded by the sudo caller when there is one, e.g.
/// `alice (sudo as root)`.
pub fn operator_name(uid: u32, account: Option<&str>, sudo_user: Option<&str>) -> String {
    let me = account
        .filter(|a| !a.is_empty())
        .map_or_else(|| format!("uid {uid}"), str::to_string);
    match sudo_user.map(str::trim).filter(|s| !s.is_empty()) {
        Some(caller) if caller != me => format!("{caller} (sudo as {me})"),
        _ => me,
    }
}

/// The account name of `uid` from the system's user database (`getpwuid_r`), if any.
pub fn account_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: every pointer is to a live local of the right type; `buf` outlives the
        // call and `pw`'s strings point into it, read before `buf` changes.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name is a NUL-terminated string inside `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_is_an_account_or_a_uid_never_unknown() {
        assert_eq!(operator_name(0, Some("root"), None), "root");
        assert_eq!(
            operator_name(0, Some("root"), Some("alice")),
            "alice (sudo as root)"
        );
        assert_eq!(operator_name(1000, Some("bob"), Some("bob")), "bob");
        assert_eq!(operator_name(1000, Some("bob"), Some(" ")), "bob");
        assert_eq!(operator_name(4242, None, None), "uid 4242");
        assert_eq!(operator_name(4242, Some(""), None), "uid 4242");
        assert_eq!(
            operator_name(4242, None, Some("carol")),
            "carol (sudo as uid 4242)"
        );
        assert_eq!(account_name(0).as_deref(), Some("root"));
    }
}
