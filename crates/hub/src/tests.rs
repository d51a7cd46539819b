use super::*;
use taskyard_engine::{CreateWorker, Kind};
use taskyard_store::sqlite::{Durability, SqliteStore};

fn open(dir: &std::path::Path) -> Hub {
    let store = SqliteStore::open(dir, Durability::Normal).expect("open store");
    Hub::start(Box::new(store)).expect("start hub")
}

fn new_ws(name: &str) -> NewWorkspace {
    NewWorkspace {
        friendly_name: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn committed_changes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = open(dir.path());
    let account = hub
        .create_account("Main".into(), None)
        .await
        .expect("account");
    let ws = hub
        .create_workspace(account.sid, new_ws("Support"), |ws| ws.sid())
        .await
        .expect("workspace");
    let handle = hub.workspace(account.sid, ws).expect("handle");
    let mut workers = Vec::new();
    for i in 0..20 {
        let cmd = Command::CreateWorker(CreateWorker {
            friendly_name: format!("w{i}"),
            activity_sid: None,
            attributes: Some(format!("{{\"n\": {i}}}")),
        });
        workers.push(
            handle
                .apply(cmd, |_, a| a.sid)
                .await
                .expect("create worker"),
        );
    }
    let before = handle.read(|ws| ws.all_rows()).await.expect("read");
    drop((hub, handle));

    let hub = open(dir.path());
    assert!(
        hub.authenticate(&account.sid.to_string(), &account.auth_token)
            .is_some()
    );
    let handle = hub.workspace(account.sid, ws).expect("workspace restored");
    let after = handle.read(|ws| ws.all_rows()).await.expect("read");
    assert_eq!(before, after, "the restored workspace is identical");
    let names = handle
        .read(|ws| {
            ws.workers()
                .values()
                .map(|w| w.friendly_name.to_string())
                .collect::<Vec<_>>()
        })
        .await
        .expect("read");
    assert_eq!(
        names,
        (0..20).map(|i| format!("w{i}")).collect::<Vec<_>>(),
        "creation order kept"
    );
    assert!(matches!(
        after[0],
        taskyard_engine::Change::Put {
            kind: Kind::Workspace,
            ..
        }
    ));
}

#[tokio::test]
async fn accounts_only_see_their_own_workspaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = open(dir.path());
    let a = hub.create_account("A".into(), None).await.expect("a");
    let b = hub
        .create_account("B".into(), Some(a.sid))
        .await
        .expect("b");
    let ws = hub
        .create_workspace(a.sid, new_ws("A's"), |ws| ws.sid())
        .await
        .expect("ws");
    assert!(hub.workspace(a.sid, ws).is_ok());
    assert!(matches!(
        hub.workspace(b.sid, ws),
        Err(HubError::WorkspaceNotFound)
    ));
    assert!(hub.workspaces(b.sid).is_empty());
    assert_eq!(hub.subaccounts(a.sid).len(), 1);
    assert!(hub.authenticate(&b.sid.to_string(), "wrong").is_none());
    assert!(hub.authenticate("not a sid", &b.auth_token).is_none());
}

#[tokio::test]
async fn a_refused_command_changes_nothing_and_a_deleted_workspace_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = open(dir.path());
    let a = hub.create_account("A".into(), None).await.expect("a");
    let ws = hub
        .create_workspace(a.sid, new_ws("W"), |ws| ws.sid())
        .await
        .expect("ws");
    let handle = hub.workspace(a.sid, ws).expect("handle");
    let before = handle.read(|ws| ws.all_rows()).await.expect("read");
    let err = handle
        .apply(
            Command::CreateWorker(CreateWorker {
                friendly_name: "x".into(),
                activity_sid: None,
                attributes: Some("{bad".into()),
            }),
            |_, _| (),
        )
        .await
        .expect_err("bad attributes");
    assert!(matches!(
        err,
        HubError::Engine(EngineError::Invalid {
            param: "Attributes",
            ..
        })
    ));
    assert_eq!(before, handle.read(|ws| ws.all_rows()).await.expect("read"));

    hub.delete_workspace(a.sid, ws).await.expect("delete");
    assert!(hub.workspace(a.sid, ws).is_err());
    drop(hub);
    let hub = open(dir.path());
    assert!(hub.workspaces(a.sid).is_empty(), "deletion is durable");
}
