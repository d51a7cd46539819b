//! The behaviour every [`Store`] backend must show, as one test suite. A backend's tests call
//! [`run`] with a function that opens the backend on the same (initially empty) location each
//! time, so reopening proves durability across instances.

use taskyard_engine::{Account, Change, Kind, Sid};

use crate::{Store, Write};

fn sid(prefix: &str, n: u128) -> Sid {
    Sid::new(prefix, n)
}

fn put(kind: Kind, s: Sid, body: &str) -> Change {
    Change::Put {
        kind,
        sid: s,
        body: body.into(),
    }
}

/// Runs the suite. `open` must return a store over the same storage every time it is called,
/// and that storage must start empty.
pub fn run<S: Store>(open: impl Fn() -> S) {
    let ws1 = sid("WS", 1);
    let ws2 = sid("WS", 2);
    let w1 = sid("WK", 1);
    let w2 = sid("WK", 2);
    let a1 = sid("WA", 1);
    let account = Account {
        sid: sid("AC", 7),
        auth_token: "secret".into(),
        friendly_name: "Main".into(),
        owner_account_sid: None,
        date_created: 1,
        date_updated: 2,
    };

    {
        let mut s = open();
        assert_eq!(
            s.load().expect("load empty"),
            Default::default(),
            "a new store is empty"
        );
        s.commit(&[
            Write::Account(account.clone()),
            Write::Workspace {
                workspace: ws1,
                changes: vec![
                    put(Kind::Workspace, ws1, "{\"ws\":1}"),
                    put(Kind::Worker, w1, "{\"v\":1}"),
                    put(Kind::Worker, w2, "{\"v\":1}"),
                    put(Kind::Activity, a1, "{\"a\":1}"),
                ],
            },
            Write::Workspace {
                workspace: ws2,
                changes: vec![
                    put(Kind::Workspace, ws2, "{\"ws\":2}"),
                    put(Kind::Worker, w1, "{\"other\":true}"),
                ],
            },
        ])
        .expect("first commit");
        // Later writes replace and delete rows; the same SID in another workspace is untouched.
        s.commit(&[Write::Workspace {
            workspace: ws1,
            changes: vec![
                put(Kind::Worker, w1, "{\"v\":2}"),
                Change::Delete {
                    kind: Kind::Worker,
                    sid: w2,
                },
            ],
        }])
        .expect("second commit");
        s.commit(&[]).expect("an empty commit is fine");
    }

    {
        let mut s = open();
        let snap = s.load().expect("reload");
        assert_eq!(
            snap.accounts,
            vec![account.clone()],
            "accounts survive reopening"
        );
        assert_eq!(snap.workspaces.len(), 2);
        let one = snap.workspaces.iter().find(|w| w.sid == ws1).expect("ws1");
        let mut rows = one.rows.clone();
        rows.sort_by_key(|(k, _)| k.as_str());
        assert_eq!(
            rows,
            vec![
                (Kind::Activity, "{\"a\":1}".to_string()),
                (Kind::Worker, "{\"v\":2}".to_string()),
                (Kind::Workspace, "{\"ws\":1}".to_string()),
            ],
            "replaced rows read back with their newest body, deleted rows are gone"
        );
        let two = snap.workspaces.iter().find(|w| w.sid == ws2).expect("ws2");
        assert!(
            two.rows
                .contains(&(Kind::Worker, "{\"other\":true}".to_string()))
        );

        // Dropping a workspace removes all of its rows and nothing else.
        s.commit(&[Write::Workspace {
            workspace: ws1,
            changes: vec![Change::DropWorkspace],
        }])
        .expect("drop");
        let mut renamed = account.clone();
        renamed.friendly_name = "Renamed".into();
        s.commit(&[Write::Account(renamed.clone())])
            .expect("account update");
    }

    let mut s = open();
    let snap = s.load().expect("reload after drop");
    assert_eq!(snap.workspaces.len(), 1);
    assert_eq!(snap.workspaces[0].sid, ws2);
    assert_eq!(snap.accounts.len(), 1);
    assert_eq!(
        snap.accounts[0].friendly_name, "Renamed",
        "accounts are replaced, not duplicated"
    );
}
