//! Proves the test harness: the real kube-apiserver built from the Kubernetes Go modules
//! serves CRDs, CEL validation, finalizers, the status subresource, server-side apply and
//! watches exactly as a cluster does.

mod support;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use std::time::Duration;
use support::{control_plane, wait_for};

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.contiguity.test
spec:
  group: smoke.contiguity.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.size <= 10"
              message: "size must be at most 10"
            properties:
              size: {type: integer}
              color: {type: string}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

async fn widgets(ns: &str) -> Api<DynamicObject> {
    let cp = control_plane();
    let out = cp.kubectl_stdin(&["apply", "--server-side", "-f", "-"], WIDGET_CRD);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cp.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/widgets.smoke.contiguity.test",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("smoke.contiguity.test", "v1", "Widget"));
    Api::namespaced_with(cp.client().await, ns, &ar)
}

fn widget(name: &str, size: i64) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "smoke.contiguity.test/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, "color": "blue"}
    }))
    .expect("widget")
}

#[tokio::test]
async fn reports_the_pinned_kubernetes_version() {
    let cp = control_plane();
    let version = cp.client().await.apiserver_version().await.expect("version");
    assert_eq!(version.git_version, "v1.37.2");
}

#[tokio::test]
async fn create_get_list_and_watch_a_custom_object() {
    let cp = control_plane();
    let ns = cp.namespace("smoke-crud").await;
    let api = widgets(&ns).await;
    let watch_api = api.clone();
    let events = tokio::spawn(async move {
        watcher(watch_api, watcher::Config::default())
            .applied_objects()
            .try_filter(|o| futures::future::ready(o.metadata.name.as_deref() == Some("b")))
            .boxed()
            .try_next()
            .await
    });
    api.create(&PostParams::default(), &widget("a", 1))
        .await
        .expect("create a");
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.create(&PostParams::default(), &widget("b", 2))
        .await
        .expect("create b");
    let got = api.get("a").await.expect("get a");
    assert_eq!(got.data["spec"]["size"], 1);
    let list = api.list(&ListParams::default()).await.expect("list");
    let mut names: Vec<_> = list.items.iter().filter_map(|o| o.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    let seen = tokio::time::timeout(Duration::from_secs(20), events)
        .await
        .expect("watch delivered in time")
        .expect("watch task")
        .expect("watch stream")
        .expect("an object");
    assert_eq!(seen.data["spec"]["size"], 2);
}

#[tokio::test]
async fn a_finalizer_holds_deletion_until_removed() {
    let cp = control_plane();
    let ns = cp.namespace("smoke-fin").await;
    let api = widgets(&ns).await;
    let mut w = widget("held", 1);
    w.metadata.finalizers = Some(vec!["contiguity.test/hold".into()]);
    api.create(&PostParams::default(), &w).await.expect("create");
    api.delete("held", &DeleteParams::default()).await.expect("delete");
    let still = api.get("held").await.expect("still there");
    assert!(still.metadata.deletion_timestamp.is_some());
    let patch = json!({"metadata": {"finalizers": null}});
    api.patch("held", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("drop finalizer");
    wait_for("object gone", Duration::from_secs(10), || {
        let api = api.clone();
        async move { api.get_opt("held").await.expect("get").is_none().then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn the_status_subresource_separates_spec_and_status() {
    let cp = control_plane();
    let ns = cp.namespace("smoke-status").await;
    let api = widgets(&ns).await;
    api.create(&PostParams::default(), &widget("s", 1))
        .await
        .expect("create");
    // A status write that also tries to change spec: only status changes.
    let p = json!({"spec": {"size": 9}, "status": {"phase": "Done"}});
    api.patch_status("s", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("patch status");
    let got = api.get("s").await.expect("get");
    assert_eq!(got.data["spec"]["size"], 1);
    assert_eq!(got.data["status"]["phase"], "Done");
    let generation = got.metadata.generation;
    // A main-resource write that also tries to change status: only spec changes.
    let p = json!({"spec": {"size": 3}, "status": {"phase": "Overwritten"}});
    api.patch("s", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .expect("patch");
    let got = api.get("s").await.expect("get");
    assert_eq!(got.data["spec"]["size"], 3);
    assert_eq!(got.data["status"]["phase"], "Done");
    assert_eq!(got.metadata.generation, generation.map(|g| g + 1));
}

#[tokio::test]
async fn server_side_apply_tracks_field_managers() {
    let cp = control_plane();
    let ns = cp.namespace("smoke-ssa").await;
    let api = widgets(&ns).await;
    let body = json!({
        "apiVersion": "smoke.contiguity.test/v1", "kind": "Widget",
        "metadata": {"name": "ssa"}, "spec": {"size": 4}
    });
    api.patch("ssa", &PatchParams::apply("team-a"), &Patch::Apply(&body))
        .await
        .expect("apply a");
    let other = json!({
        "apiVersion": "smoke.contiguity.test/v1", "kind": "Widget",
        "metadata": {"name": "ssa"}, "spec": {"size": 5}
    });
    // A second manager changing an owned field conflicts unless it forces.
    let err = api
        .patch("ssa", &PatchParams::apply("team-b"), &Patch::Apply(&other))
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 409, "{s:?}"),
        e => panic!("unexpected {e:?}"),
    }
    api.patch("ssa", &PatchParams::apply("team-b").force(), &Patch::Apply(&other))
        .await
        .expect("forced apply");
    let got = api.get("ssa").await.expect("get");
    assert_eq!(got.data["spec"]["size"], 5);
    let managers: Vec<_> = got
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"team-b".to_string()), "{managers:?}");
}

#[tokio::test]
async fn a_cel_rule_rejects_a_bad_object_with_its_message() {
    let cp = control_plane();
    let ns = cp.namespace("smoke-cel").await;
    let api = widgets(&ns).await;
    let err = api
        .create(&PostParams::default(), &widget("big", 11))
        .await
        .expect_err("rejected");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("size must be at most 10"), "{}", s.message);
        }
        e => panic!("unexpected {e:?}"),
    }
}
