//! Hostile input, issue 10 item 5: a consistent rewrite of the whole ledger. Someone who
//! can write the ledger folder, but does not hold the signing key, re-encodes every record
//! and recomputes every hash with the published context (`support::forge`). `ledger
//! verify` with no checkpoint cannot tell (the documented limit, `docs/ledger.md`); with a
//! key configured, `run` and `rollback` check the ledger against the signed checkpoint
//! written beside it and refuse to act on the rewritten one, and deleting the checkpoint
//! does not get around that.

mod support;

use support::forge;
use support::upgrade::{Run, json_of, ok, output, show};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consistently_rewritten_ledger_passes_verify_alone_but_run_and_rollback_refuse() {
    let run = Run::planned().await;
    let folder = run.ledger().parent().unwrap().to_path_buf();
    let key = folder.join("ops.key");
    let out = ok(run
        .cli()
        .args(["--json", "ledger", "keygen", "--out"])
        .arg(&key));
    let public = json_of(&out.stdout)["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    run.ok(&["run", "--yes", "--sign", key.to_str().unwrap()])
        .await;
    let checkpoint = folder.join("ledger.checkpoint");
    let text = std::fs::read_to_string(&checkpoint).expect("run wrote a signed checkpoint");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    let (cp_seq, cp_head) = (field("seq"), field("head"));
    let records = run.replay().0.len() as u64;

    // The attacker rewrites who did it and when, and re-links the whole chain.
    let rewritten = forge::rewrite_chain(&run.ledger(), |r| {
        r.operator = "mallory".into();
        r.timestamp_micros -= 3_600_000_000;
    });
    assert_eq!(rewritten, records);
    assert_eq!(run.replay().0[0].operator, "mallory");

    // The limit: the chain alone agrees with itself, so `ledger verify` passes...
    run.verify_ledger();
    // ... while the signed checkpoint kept outside the folder exposes it.
    let out = run
        .cli()
        .args(["--json", "ledger", "verify", "--anchor"])
        .arg(&checkpoint)
        .args(["--pubkey", &public])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));

    // `rollback` with the signing key configured refuses before acting: exit 3, the message
    // names the checkpoint's seq and head and what the ledger holds there.
    let out = output(
        run.cli()
            .env("OMS_UPGRADE_SIGNING_KEY", &key)
            .args(["rollback", "--yes"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("seq {cp_seq}")) && err.contains(&cp_head),
        "the refusal names the checkpoint: {err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(
        run.replay().0.len() as u64,
        records,
        "nothing was recorded (nor done)"
    );

    // `run` with only the public key configured refuses the same way.
    let out = output(run.cli().args(["run", "--yes", "--pubkey", &public])).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains(&cp_head), "{}", show(&out));
    let out = output(
        run.cli()
            .env("OMS_UPGRADE_PUBKEY", &public)
            .args(["rollback", "--yes"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));

    // Deleting the checkpoint does not get around the check: the ledger records steps, so
    // with a key configured a checkpoint must be there.
    std::fs::remove_file(&checkpoint).unwrap();
    for env in ["OMS_UPGRADE_SIGNING_KEY", "OMS_UPGRADE_PUBKEY"] {
        let value = if env == "OMS_UPGRADE_PUBKEY" {
            public.clone()
        } else {
            key.display().to_string()
        };
        let out = output(run.cli().env(env, value).args(["rollback", "--yes"])).await;
        assert_eq!(out.status.code(), Some(3), "{env}: {}", show(&out));
        assert!(
            stderr(&out).contains("no signed checkpoint"),
            "{env}: {}",
            show(&out)
        );
    }
    assert_eq!(run.replay().0.len() as u64, records);
    // The node still runs the upgraded container: nothing was rolled back.
    assert_eq!(run.status()["phase"], "completed");
}
