use super::samples::*;
use super::*;
use crate::versions::ProcedureId;

#[test]
fn every_event_round_trips() {
    let all = every_event();
    assert!(all.len() > 90);
    for ev in all {
        let enc = encode(&ev);
        assert_eq!(enc.event_type, ev.type_name());
        assert!(EVENT_TYPES.contains(&(enc.event_type, enc.schema_version)));
        let back = decode(enc.event_type, enc.schema_version, &enc.payload).unwrap();
        assert_eq!(back, ev);
    }
}

#[test]
fn every_event_type_is_covered_by_the_samples() {
    let seen: std::collections::BTreeSet<&str> =
        every_event().iter().map(|e| e.type_name()).collect();
    let known: std::collections::BTreeSet<&str> = EVENT_TYPES.iter().map(|(t, _)| *t).collect();
    assert_eq!(seen, known);
}

#[test]
fn unknown_type_and_version_are_errors() {
    let enc = encode(&Event::Note { text: "x".into() });
    let e = decode("note.v9", 1, &enc.payload).unwrap_err();
    assert!(matches!(e, DecodeError::UnknownType { .. }));
    assert!(e.to_string().contains("step.intent v1"));
    let e = decode("note", 2, &enc.payload).unwrap_err();
    assert_eq!(
        e,
        DecodeError::UnknownVersion {
            event_type: "note".into(),
            version: 2
        }
    );
}

#[test]
fn malformed_and_trailing_bytes_are_errors() {
    let mut enc = encode(&Event::StepIntent {
        key: StepKey::Dump { db: MetaDb::Cm },
    });
    enc.payload.push(0);
    let e = decode(enc.event_type, 1, &enc.payload).unwrap_err();
    assert!(e.to_string().contains("1 trailing bytes"), "{e}");
    // A variant index no v1 enum has.
    let e = decode(types::STEP_INTENT, 1, &[200]).unwrap_err();
    assert!(matches!(e, DecodeError::Malformed { .. }));
    let enc = encode(&Event::planned(plan()));
    let e = decode(types::RUN_PLANNED, 1, &enc.payload[..enc.payload.len() / 2]).unwrap_err();
    assert!(matches!(e, DecodeError::Malformed { .. }));
}

/// Found by fuzzing (`fuzz/corpus/event_decode/regress-note-claims-2p60-bytes`): a length
/// prefix claiming 2^60 bytes made bincode allocate them up front and abort the process.
#[test]
fn a_length_claiming_more_than_a_record_holds_is_malformed() {
    let e = decode(types::NOTE, 1, &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]).unwrap_err();
    assert!(matches!(e, DecodeError::Malformed { .. }), "{e}");
}

#[test]
fn out_of_range_time_is_malformed() {
    let bad = v1::AttestationV1 {
        by: "a".into(),
        statement: "b".into(),
        step: None,
        observed_at: Some(i64::MAX),
    };
    let bytes = bincode::serde::encode_to_vec(&bad, bincode::config::standard()).unwrap();
    let e = decode(types::ATTESTATION, 1, &bytes).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
}

/// Pins the stored encoding: if one of these changes, old ledgers would no longer
/// decode. Add a new schema version instead of editing v1.
#[test]
fn golden_bytes_of_v1() {
    let hex_of = |e: &Event| hex::encode(encode(e).payload);
    assert_eq!(
        hex_of(&Event::StepIntent {
            key: StepKey::Dump { db: MetaDb::CmHb }
        }),
        "0302"
    );
    assert_eq!(
        hex_of(&Event::StepIntent {
            key: StepKey::RollbackComplete
        }),
        "17"
    );
    assert_eq!(hex_of(&Event::Note { text: "hi".into() }), "026869");
    // step.tables: key dump-cm (3, 1), first 2, one table ("t", 5 rows, "c", "blake3-rows").
    assert_eq!(
        hex_of(&Event::StepTables {
            key: StepKey::Dump { db: MetaDb::Cm },
            first: 2,
            tables: vec![TableFact {
                name: "t".into(),
                rows: 5,
                checksum: "c".into(),
                method: ChecksumMethod::Blake3Rows,
            }],
        }),
        "0301020101740501630b626c616b65332d726f7773"
    );
    assert_eq!(
        hex_of(&Event::StepDone {
            key: StepKey::StopOldContainer,
            facts: StepFacts::ContainerStopped(ContainerStopped {
                id: "c1".into(),
                stopped_at: t0(),
                stop_requested_at: None,
                docker_finished_at: None,
                exit_code: Some(-1),
                already_stopped: false,
            }),
        }),
        "0101026331fd0020780ab92e0c0000010100"
    );
    // The whole plan: pinned by digest (the sample plan is fixed).
    assert_eq!(
        plan().digest().to_string(),
        "bdfa5f4ed51c922a752003f5e1467f15d171aaf13e5a7587fcf9f66dfad31044"
    );
}

#[test]
fn decoder_gives_a_json_view() {
    let enc = encode(&Event::StepDone {
        key: StepKey::Dump { db: MetaDb::Rm },
        facts: StepFacts::DumpWritten(artifact(&plan(), MetaDb::Rm)),
    });
    let v = EventDecoder
        .decode_view(enc.event_type, enc.schema_version, &enc.payload)
        .unwrap();
    assert_eq!(v["event"], "step_done");
    assert_eq!(v["key"], "dump-rm");
    assert_eq!(v["facts"]["kind"], "dump_written");
    assert_eq!(v["facts"]["database"], "oms_rm");
    let enc = encode(&Event::planned(plan()));
    let v = EventDecoder
        .decode_view(enc.event_type, 1, &enc.payload)
        .unwrap();
    assert_eq!(v["plan"]["target_version"], "3.3.1");
    assert_eq!(v["plan"]["procedure"], "guide-3.3.1");
    assert_eq!(v["digest"], plan().digest().to_string());
    assert!(!v.to_string().contains("hunter2"));
    assert!(
        EventDecoder
            .decode_view("bogus", 1, &[])
            .unwrap_err()
            .contains("unknown event type `bogus`")
    );
}

#[test]
fn plan_defaults_and_secret_env() {
    let p = plan();
    assert_eq!(p.procedure, ProcedureId::Guide331);
    assert_eq!(plan_for("4.2.1", "4.2.2").procedure, ProcedureId::Guide42x);
    assert_eq!(plan_for("3.2.2", "3.3.0").procedure, ProcedureId::Guide330);
    assert_eq!(p.old_renamed_to, "oms-pre-3.3.1");
    assert_eq!(p.failed_name, "oms-failed-3.3.1");
    assert_eq!(p.new_name, "oms");
    assert_eq!(p.stop_timeout_secs, Plan::DEFAULT_STOP_TIMEOUT_SECS);
    assert_eq!(
        p.dump_file(MetaDb::CmHb),
        format!("/var/backups/oms/{}/oms_cm_hb.sql", p.run_id)
    );
    let env: Vec<String> = p.old_container.env.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        env,
        [
            "OMS_HOST_IP=10.0.0.5",
            "OMS_META_PASSWORD=***",
            "PATH=/usr/bin"
        ]
    );
    for secret in [
        "MYSQL_PWD",
        "api_token",
        "TLS_KEY",
        "db_passwd",
        "AWS_SECRET",
    ] {
        assert!(looks_secret(secret), "{secret}");
    }
    for plain in ["PATH", "OMS_HOST_IP", "IS_UPGRADE", "LANG", "HOME"] {
        assert!(!looks_secret(plain), "{plain}");
    }
}

#[test]
fn plan_refuses_bad_input() {
    let e = Plan::new(input("3.2.2", "3.3.1")).unwrap_err();
    assert!(matches!(e, PlanError::Unsupported(_)));
    assert!(e.to_string().contains("3.2.2 -> 3.3.0 -> 3.3.1"));
    let mut i = input("3.3.0", "3.3.1");
    i.old_renamed_to = Some("oms".into());
    assert!(
        Plan::new(i)
            .unwrap_err()
            .to_string()
            .contains("must differ")
    );
    let mut i = input("3.3.0", "3.3.1");
    i.databases.cm = "oms_rm".into();
    assert!(
        Plan::new(i)
            .unwrap_err()
            .to_string()
            .contains("three different")
    );
    let mut i = input("3.3.0", "3.3.1");
    i.old_container.binds.clear();
    assert!(Plan::new(i).unwrap_err().to_string().contains("binds"));
    let mut i = input("3.3.0", "3.3.1");
    i.old_container.name = "/oms".into();
    i.old_renamed_to = Some("oms-old".into());
    let p = Plan::new(i).unwrap();
    assert_eq!(
        (p.new_name.as_str(), p.old_renamed_to.as_str()),
        ("oms", "oms-old")
    );
}

#[test]
fn plan_digest_is_stable_and_sensitive() {
    let p = plan();
    assert_eq!(p.digest(), plan().digest());
    let mut q = p.clone();
    q.privileged = false;
    assert_ne!(p.digest(), q.digest());
    let mut q = p.clone();
    q.old_container.binds.swap(0, 1);
    assert_ne!(p.digest(), q.digest());
}

#[test]
fn a_plan_without_extensions_stays_v1_and_one_with_them_is_v2() {
    let p = plan();
    let enc = encode(&Event::planned(p.clone()));
    assert_eq!(
        enc.schema_version, 1,
        "no extension: the v1 form, byte for byte"
    );
    let q = plan_with_every_ext();
    let enc2 = encode(&Event::planned(q.clone()));
    assert_eq!(enc2.schema_version, 2);
    // The v2 payload starts with the same v1 plan fields.
    let mut base = q.clone();
    base.ext.clear();
    let enc_base = encode(&Event::planned(base.clone()));
    // v1 is the plan then the 32-byte digest; v2 puts the extensions between them.
    assert_eq!(
        &enc2.payload[..enc_base.payload.len() - 32],
        &enc_base.payload[..enc_base.payload.len() - 32]
    );
    // Each extension counts in the digest.
    assert_ne!(q.digest(), base.digest());
    let mut r = q.clone();
    r.ext.pop();
    assert_ne!(q.digest(), r.digest());
    // The accessors find each kind.
    assert!(q.health_trust().is_some() && q.meta_server().is_some());
    assert!(q.container_settings().is_some() && p.health_trust().is_none());
    assert_eq!(q.ha_at_init(), Some(HA_ON));
    assert_eq!(p.ha_at_init(), None);
}

#[test]
fn a_v2_plan_with_no_or_repeated_extensions_is_malformed() {
    let q = plan_with_every_ext();
    let mut stored = v1::RunPlannedV2 {
        plan: v1::PlanV1::from(&q),
        ext: Vec::new(),
        digest: q.digest().0,
    };
    let bytes = |s: &v1::RunPlannedV2| {
        bincode::serde::encode_to_vec(s, bincode::config::standard()).unwrap()
    };
    let e = decode(types::RUN_PLANNED, 2, &bytes(&stored)).unwrap_err();
    assert!(e.to_string().contains("no plan extension"), "{e}");
    let one = v1::PlanExtV1::from(&q.ext[0]);
    stored.ext = vec![one.clone(), one];
    let e = decode(types::RUN_PLANNED, 2, &bytes(&stored)).unwrap_err();
    assert!(e.to_string().contains("`health` twice"), "{e}");
    let mut input = input("3.3.0", "3.3.1");
    input.ext = vec![q.ext[1].clone(), q.ext[1].clone()];
    let e = Plan::new(input).unwrap_err();
    assert!(
        e.to_string().contains("`meta_server` is given twice"),
        "{e}"
    );
}

#[test]
fn step_key_names_round_trip_and_are_unique() {
    let all = StepKey::all();
    let names: std::collections::BTreeSet<String> = all.iter().map(|k| k.to_string()).collect();
    assert_eq!(names.len(), all.len());
    for k in all {
        assert_eq!(k.to_string().parse::<StepKey>().unwrap(), k);
        assert_eq!(StepKey::from(v1::StepKeyV1::from(k)), k);
    }
    let e = "dump-xx".parse::<StepKey>().unwrap_err();
    assert!(e.to_string().contains("dump-cm_hb"));
}

#[test]
fn keys_accept_only_their_own_facts() {
    let p = plan();
    for k in StepKey::all() {
        let f = done_facts(&p, k, t0(), Some(t0()));
        assert!(k.accepts(&f), "{k}");
        assert_eq!(f.contradiction(), None, "{k}");
    }
    let rm = done_facts(&p, StepKey::Dump { db: MetaDb::Rm }, t0(), None);
    assert!(!StepKey::Dump { db: MetaDb::Cm }.accepts(&rm));
    assert!(!StepKey::StopOldContainer.accepts(&rm));
    let skipped = StepFacts::Skipped { reason: "x".into() };
    assert!(StepKey::RenameNewAside.accepts(&skipped));
    assert!(!StepKey::Restore { db: MetaDb::Rm }.accepts(&skipped));
}

#[test]
fn failed_facts_contradict_done() {
    let p = plan();
    let mut f = done_facts(&p, StepKey::CreateNewContainer, t0(), None);
    if let StepFacts::NewContainerCreated(n) = &mut f {
        n.binds.pop();
    }
    assert!(f.contradiction().unwrap().contains("differ"));
    let mut f = done_facts(&p, StepKey::RunDockerInit, t0(), None);
    if let StepFacts::DockerInit(d) = &mut f {
        d.marker_seen = false;
    }
    assert!(f.contradiction().is_some());
    let mut f = done_facts(&p, StepKey::ConfirmHealth, t0(), None);
    if let StepFacts::Health(h) = &mut f {
        h.healthy = false;
    }
    assert!(f.contradiction().is_some());
    let mut f = done_facts(&p, StepKey::Dump { db: MetaDb::Rm }, t0(), None);
    if let StepFacts::DumpWritten(a) = &mut f {
        a.size = 0;
    }
    assert!(f.contradiction().unwrap().contains("empty"));
}

#[test]
fn tails_cut_on_char_boundaries() {
    let log = "步骤".repeat(2000) + "【结束】全部初始化步骤执行成功";
    let t = tail_utf8(&log, LOG_TAIL_MAX_BYTES);
    assert!(t.len() <= LOG_TAIL_MAX_BYTES && t.len() > LOG_TAIL_MAX_BYTES - 4);
    assert!(t.ends_with("执行成功"));
    assert_eq!(tail_utf8("short", 10), "short");
}

#[test]
fn a_large_realistic_event_fits_a_ledger_record() {
    // A ledger record holds at most 64 KiB: a dump of 300 tables (OMS's rm has about
    // a hundred) with long names and BLAKE3 checksums is about 37 KiB. Roughly 500
    // tables per database is the limit of this layout.
    let p = plan();
    let mut a = artifact(&p, MetaDb::Rm);
    a.tables = (0..300)
        .map(|i| TableFact {
            name: format!("oms_some_rather_long_table_name_{i:04}"),
            rows: u64::MAX,
            checksum: "f".repeat(64),
            method: ChecksumMethod::Blake3Rows,
        })
        .collect();
    let enc = encode(&Event::StepDone {
        key: StepKey::Dump { db: MetaDb::Rm },
        facts: StepFacts::DumpWritten(a),
    });
    assert!(enc.payload.len() < 40 * 1024, "{}", enc.payload.len());
}

/// issue 12.5: the polled supervisor check round-trips, is accepted for `check-supervisor`
/// and, when a program is not RUNNING, contradicts a `done` naming it.
#[test]
fn supervisor_poll_round_trips_and_names_what_is_not_running() {
    let poll = |state: &str| {
        StepFacts::SupervisorPolled(SupervisorPoll {
            programs: vec![
                NamedState {
                    name: "oms_console".into(),
                    state: "RUNNING".into(),
                },
                NamedState {
                    name: "oms_drc_cm".into(),
                    state: state.into(),
                },
            ],
            all_running: state == "RUNNING",
            polls: 7,
            elapsed_ms: 12_345,
            timeout_secs: 60,
        })
    };
    for state in ["RUNNING", "FATAL"] {
        let ev = Event::StepDone {
            key: StepKey::CheckSupervisor,
            facts: poll(state),
        };
        let enc = encode(&ev);
        assert_eq!(
            decode(enc.event_type, enc.schema_version, &enc.payload).unwrap(),
            ev
        );
        assert!(StepKey::CheckSupervisor.accepts(&poll(state)));
    }
    assert_eq!(poll("RUNNING").contradiction(), None);
    let c = poll("FATAL").contradiction().unwrap();
    assert!(
        c.contains("oms_drc_cm FATAL") && c.contains("7 polls"),
        "{c}"
    );
    assert!(!c.contains("oms_console"), "{c}");
}

/// A stored `step.done` for `dump-rm` whose artifact (stored form) was changed by `edit`.
fn dump_done_payload(edit: impl FnOnce(&mut v1::DumpArtifactV1)) -> Vec<u8> {
    let mut stored = v1::DumpArtifactV1::from(&artifact(&plan(), MetaDb::Rm));
    edit(&mut stored);
    let done = v1::StepDoneV1 {
        key: StepKey::Dump { db: MetaDb::Rm }.into(),
        facts: v1::StepFactsV1::DumpWritten(stored),
    };
    encode_stored(types::STEP_DONE, &done).payload
}

/// issue 13: the stored artifact's words (format, compression, dumper, checksum method)
/// decode to the domain's enums; the words every earlier version wrote are all known.
#[test]
fn stored_dump_words_decode_to_their_enums() {
    for (compression, dumper, method) in [
        ("none", "native", "checksum-table"),
        ("zstd", "mysqldump", "blake3-rows"),
    ] {
        let payload = dump_done_payload(|a| {
            a.format = "sql".into();
            a.compression = compression.into();
            a.dumper = dumper.into();
            for t in &mut a.tables {
                t.method = method.into();
            }
        });
        let ev = decode(types::STEP_DONE, 1, &payload).unwrap();
        let Event::StepDone {
            facts: StepFacts::DumpWritten(a),
            ..
        } = ev
        else {
            panic!("not a dump: {ev:?}")
        };
        // The domain form encodes back to the same bytes.
        let again = encode(&Event::StepDone {
            key: StepKey::Dump { db: MetaDb::Rm },
            facts: StepFacts::DumpWritten(a),
        });
        assert_eq!(again.payload, payload, "{compression} {dumper} {method}");
    }
}

/// issue 13: a word this version does not know (a newer version's compression, or a
/// damaged record) is a decode error naming the field and the value, never a default that
/// would let a rollback restore a file as what it is not.
#[test]
fn an_unknown_stored_dump_word_is_an_error_naming_it() {
    type Edit = fn(&mut v1::DumpArtifactV1);
    let cases: [(&str, Edit); 4] = [
        ("lz4", |a| a.compression = "lz4".into()),
        ("mydumper", |a| a.dumper = "mydumper".into()),
        ("csv", |a| a.format = "csv".into()),
        ("crc32-rows", |a| a.tables[0].method = "crc32-rows".into()),
    ];
    for (word, edit) in cases {
        let payload = dump_done_payload(edit);
        let e = decode(types::STEP_DONE, 1, &payload).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed { .. }), "{word}: {e:?}");
        assert!(e.to_string().contains(&format!("`{word}`")), "{e}");
    }
}

/// issue 13: a failure's kind is stored as `step.failed` v2; a failure without one keeps
/// the v1 bytes, and a v1 record reads as "unrecorded", never as one of the kinds.
#[test]
fn a_failure_kind_is_stored_as_v2_and_a_v1_record_reads_as_unrecorded() {
    let failed = |kind| Event::StepFailed {
        key: StepKey::Restore { db: MetaDb::Cm },
        error: "changed".into(),
        retryable: false,
        facts: None,
        kind,
    };
    let v1 = encode(&failed(FailureKind::Unrecorded));
    assert_eq!(v1.schema_version, 1);
    // The v1 layout: key (19, 1), error "changed", retryable 0, facts none.
    assert_eq!(hex::encode(&v1.payload), "1301076368616e6765640000");
    let back = decode(v1.event_type, 1, &v1.payload).unwrap();
    assert_eq!(back, failed(FailureKind::Unrecorded));
    for kind in [
        FailureKind::Service,
        FailureKind::Integrity,
        FailureKind::Refused,
    ] {
        let v2 = encode(&failed(kind));
        assert_eq!(v2.schema_version, 2, "{kind}");
        // v1's fields, then the kind.
        assert_eq!(&v2.payload[..v1.payload.len()], &v1.payload[..], "{kind}");
        assert_eq!(decode(v2.event_type, 2, &v2.payload).unwrap(), failed(kind));
        // A v2 payload read as v1 has a trailing byte: malformed, not a guess.
        assert!(decode(v2.event_type, 1, &v2.payload).is_err());
    }
    let view = serde_json::to_value(failed(FailureKind::Integrity)).unwrap();
    assert_eq!(view["kind"], "integrity");
}

/// issue 13: a reconciliation's failed finding carries its kind; one without a kind keeps
/// the old `Failed` form (its bytes unchanged) and reads back as "unrecorded".
#[test]
fn a_failed_finding_keeps_its_kind_and_an_old_one_reads_as_unrecorded() {
    let reconciled = |kind| Event::StepReconciled {
        key: StepKey::PruneHeartbeat,
        finding: Finding::Failed {
            error: "e".into(),
            retryable: true,
            kind,
        },
        evidence: "x".into(),
    };
    // key 2, variant 2 `Failed` ("e", retryable), evidence "x".
    let old = encode(&reconciled(FailureKind::Unrecorded));
    assert_eq!(hex::encode(&old.payload), "02020165010178");
    assert_eq!(
        decode(old.event_type, old.schema_version, &old.payload).unwrap(),
        reconciled(FailureKind::Unrecorded)
    );
    for kind in [
        FailureKind::Service,
        FailureKind::Integrity,
        FailureKind::Refused,
    ] {
        let new = encode(&reconciled(kind));
        assert_eq!(
            new.schema_version, 1,
            "an appended variant, not a new version"
        );
        assert_ne!(new.payload, old.payload);
        assert_eq!(
            decode(new.event_type, 1, &new.payload).unwrap(),
            reconciled(kind)
        );
    }
}

/// issue 14: the witness extension is stored at the end of `PlanExtV1` (index 4), round
/// trips, and plans recorded before it (without it) decode as before.
#[test]
fn the_witness_extension_is_appended_and_round_trips() {
    use crate::witness::WitnessPolicy;
    for policy in [WitnessPolicy::Required, WitnessPolicy::BestEffort] {
        let mut input = input("3.3.0", "3.3.1");
        let w = WitnessPlan {
            target: "mysql://writer@db.example:3306/oms_witness".into(),
            policy,
        };
        input.ext = vec![PlanExt::Witness(w.clone())];
        let p = Plan::new(input).unwrap();
        assert_eq!(p.witness(), Some(&w));
        assert_eq!(
            p.witness()
                .and_then(crate::witness::WitnessTarget::from_plan)
                .map(|t| t.to_string()),
            Some(w.target.clone())
        );
        let enc = encode(&Event::planned(p.clone()));
        assert_eq!(enc.schema_version, 2);
        let back = decode(enc.event_type, enc.schema_version, &enc.payload).unwrap();
        assert_eq!(back, Event::planned(p.clone()));
        let stored = v1::PlanExtV1::from(&p.ext[0]);
        let bytes = bincode::serde::encode_to_vec(&stored, bincode::config::standard()).unwrap();
        assert_eq!(bytes[0], 4, "the variant index: appended after HaAtInit");
    }
    assert_eq!(plan_with_every_ext().witness(), None);
}

/// issue 16: the estimate extension is stored at the end of `PlanExtV1` (index 6), round
/// trips, and plans recorded before it (without it) decode as before, with no estimate.
#[test]
fn the_estimate_extension_is_appended_and_round_trips() {
    use crate::estimate::{DbMeasure, ReadProbe, estimate};
    let mut input = input("3.3.0", "3.3.1");
    let e = estimate(
        vec![DbMeasure {
            name: "drc_cm_db".into(),
            tables: 12,
            rows: 1_000,
            data_bytes: 5_000_000,
            index_bytes: 1_000_000,
        }],
        ("drc_cm_heartbeat_db", 0),
        Some(ReadProbe {
            table: "drc_cm_db.oms_task".into(),
            bytes: 4_000_000,
            rows: 900,
            micros: 80_000,
        }),
        3,
    );
    input.ext = vec![PlanExt::Estimate(Box::new(e.clone()))];
    let p = Plan::new(input).unwrap();
    assert_eq!(p.estimate(), Some(&e));
    let enc = encode(&Event::planned(p.clone()));
    assert_eq!(enc.schema_version, 2);
    let back = decode(enc.event_type, enc.schema_version, &enc.payload).unwrap();
    assert_eq!(back, Event::planned(p.clone()));
    let stored = v1::PlanExtV1::from(&p.ext[0]);
    let bytes = bincode::serde::encode_to_vec(&stored, bincode::config::standard()).unwrap();
    assert_eq!(bytes[0], 6, "the variant index: appended after Deployment");
    // A plan recorded before issue 16 has none, and still decodes.
    let old = plan_with_every_ext();
    let enc = encode(&Event::planned(old.clone()));
    let back = decode(enc.event_type, enc.schema_version, &enc.payload).unwrap();
    assert_eq!(back, Event::planned(old.clone()));
    assert_eq!(old.estimate(), None);
}

/// issue 16, second pass: a part learned from earlier runs is recorded with the basis
/// variant appended after `Assumed` (index 2), and the older bases keep their bytes.
#[test]
fn a_learned_basis_is_appended_and_round_trips() {
    use crate::estimate::{Basis, DbMeasure, EarlierRun, PartKind, estimate};
    let mut e = estimate(
        vec![DbMeasure {
            name: "drc_cm_db".into(),
            tables: 1,
            rows: 1,
            data_bytes: 1,
            index_bytes: 0,
        }],
        ("drc_cm_heartbeat_db", 0),
        None,
        3,
    );
    e.learn(
        crate::versions::Version::new(3, 3, 1),
        &[EarlierRun {
            target: crate::versions::Version::new(3, 3, 1),
            finished_at: chrono::DateTime::UNIX_EPOCH,
            parts: vec![(PartKind::DockerInit, 42_000)],
        }],
    );
    let learned = e.part(PartKind::DockerInit).unwrap();
    assert_eq!(
        learned.basis,
        Basis::EarlierRuns {
            runs: 1,
            version: "3.3.1".into()
        }
    );
    let mut input = input("3.3.0", "3.3.1");
    input.ext = vec![PlanExt::Estimate(Box::new(e.clone()))];
    let p = Plan::new(input).unwrap();
    let enc = encode(&Event::planned(p.clone()));
    let back = decode(enc.event_type, enc.schema_version, &enc.payload).unwrap();
    assert_eq!(back, Event::planned(p));
    let std = bincode::config::standard();
    let bytes = |b: &v1::BasisV1| bincode::serde::encode_to_vec(b, std).unwrap();
    assert_eq!(bytes(&v1::BasisV1::Measured), [0]);
    assert_eq!(bytes(&v1::BasisV1::Assumed), [1]);
    let stored = bytes(&v1::BasisV1::EarlierRuns {
        runs: 1,
        version: "3.3.1".into(),
    });
    assert_eq!(stored[0], 2, "appended after Assumed");
}
