//! Store behaviour: keys, indexes, relists, compression and snapshots.
use super::*;
use crate::json::{decode_object, strip_member, Schema};

fn pod(ns: &str, name: &str, rv: &str, node: &str, app: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"{ns}","uid":"uid-{name}","resourceVersion":"{rv}","labels":{{"app":"{app}"}},"managedFields":[{{"manager":"m"}}]}},"spec":{{"nodeName":"{node}"}}}}"#
    )
}

fn keys(v: &[Key]) -> Vec<&str> {
    v.iter().map(|k| &**k).collect()
}

#[test]
fn upsert_keys_objects_by_namespace_and_name() {
    let mut s = Store::new(true);
    let k = s
        .upsert(pod("ns", "a", "1", "n1", "web").as_bytes())
        .unwrap();
    assert_eq!(&*k, "ns/a");
    let k = s.upsert(br#"{"metadata":{"name":"node-1"}}"#).unwrap();
    assert_eq!(&*k, "node-1");
    assert_eq!(s.len(), 2);
    let e = s.get("ns/a").unwrap();
    assert_eq!(e.uid(), Some("uid-a"));
    assert_eq!(e.resource_version(), Some("1"));
    assert_eq!(e.labels().collect::<Vec<_>>(), [("app", "web")]);
    assert_eq!((e.namespace("ns/a"), e.name("ns/a")), (Some("ns"), "a"));
    assert!(!e.deleting());
    let e = s.get("node-1").unwrap();
    assert_eq!((e.namespace("node-1"), e.name("node-1")), (None, "node-1"));
    assert_eq!((e.uid(), e.resource_version()), (None, None));
    assert_eq!(e.labels().count(), 0);
}

#[test]
fn an_object_without_a_name_is_refused() {
    let mut s = Store::new(true);
    assert_eq!(
        s.upsert(br#"{"metadata":{"namespace":"x"}}"#),
        Err(StoreError::NoName)
    );
}

#[test]
fn managed_fields_are_stripped_only_when_asked() {
    let raw = pod("ns", "a", "1", "n1", "web");
    let mut s = Store::new(true);
    s.upsert(raw.as_bytes()).unwrap();
    let stored = String::from_utf8(s.get("ns/a").unwrap().raw().unwrap().into_owned()).unwrap();
    assert!(!stored.contains("managedFields"));
    assert!(stored.contains(r#""labels":{"app":"web"}}"#));
    let mut s = Store::new(false);
    s.upsert(raw.as_bytes()).unwrap();
    assert_eq!(&*s.get("ns/a").unwrap().raw().unwrap(), raw.as_bytes());
}

#[test]
fn the_namespace_index_is_built_in_and_empty_sets_are_removed() {
    let mut s = Store::new(true);
    s.upsert(pod("ns1", "a", "1", "n1", "web").as_bytes())
        .unwrap();
    s.upsert(pod("ns1", "b", "1", "n1", "web").as_bytes())
        .unwrap();
    s.upsert(pod("ns2", "c", "1", "n1", "web").as_bytes())
        .unwrap();
    assert_eq!(
        keys(&s.by_index("namespace", "ns1").unwrap()),
        ["ns1/a", "ns1/b"]
    );
    s.delete("ns2/c");
    assert_eq!(s.index_values("namespace").unwrap(), ["ns1"]);
    assert_eq!(s.by_index("namespace", "ns2").unwrap().len(), 0);
    assert_eq!(s.by_index("nope", "x"), None);
}

#[test]
fn field_and_label_indexes_follow_updates() {
    let mut s = Store::new(true);
    s.upsert(pod("ns", "a", "1", "n1", "web").as_bytes())
        .unwrap();
    s.add_index("node", "spec.nodeName").unwrap();
    s.add_index("app", "label:app").unwrap();
    assert_eq!(keys(&s.by_index("node", "n1").unwrap()), ["ns/a"]);
    s.upsert(pod("ns", "a", "2", "n2", "db").as_bytes())
        .unwrap();
    assert_eq!(s.index_values("node").unwrap(), ["n2"]);
    assert_eq!(s.index_values("app").unwrap(), ["db"]);
    assert_eq!(
        s.add_index("node", "spec.x"),
        Err(StoreError::DuplicateIndex("node".into()))
    );
    assert!(s.add_index("bad", "spec..x").is_err());
    s.delete("ns/a");
    assert!(s.index_values("node").unwrap().is_empty());
    assert!(s.index_values("app").unwrap().is_empty());
}

#[test]
fn replace_reports_added_updated_and_tombstones() {
    let mut s = Store::new(true);
    s.upsert(pod("ns", "a", "1", "n1", "web").as_bytes())
        .unwrap();
    s.upsert(pod("ns", "b", "1", "n1", "web").as_bytes())
        .unwrap();
    let schema = Schema::new(&[]);
    let items: Vec<ListItem> = [
        pod("ns", "b", "2", "n1", "web"),
        pod("ns", "c", "2", "n1", "web"),
    ]
    .into_iter()
    .map(|raw| {
        let meta = decode_object(raw.as_bytes(), &schema).unwrap();
        ListItem::new(raw.as_bytes(), meta, false, None).unwrap()
    })
    .collect();
    let out = s.replace(items, Some("9".into())).unwrap();
    assert_eq!(keys(&out.added), ["ns/c"]);
    assert_eq!(keys(&out.updated), ["ns/b"]);
    assert_eq!(out.deleted.len(), 1);
    assert_eq!(&*out.deleted[0].0, "ns/a");
    assert_eq!(s.len(), 2);
    assert_eq!(s.resource_version.as_deref(), Some("9"));
    assert_eq!(s.get("ns/b").unwrap().resource_version(), Some("2"));
}

#[test]
fn an_accumulator_that_strips_hands_over_stripped_bytes() {
    let schema = Schema::new(&[]);
    let raw = pod("ns", "a", "1", "n1", "web");
    let mut acc = ListAccumulator::new(true);
    acc.push(
        raw.as_bytes(),
        decode_object(raw.as_bytes(), &schema).unwrap(),
    )
    .unwrap();
    let kept = String::from_utf8(acc.items[0].entry.raw().unwrap().into_owned()).unwrap();
    assert!(!kept.contains("managedFields"));
    assert_eq!(acc.items[0].managed_fields, None);
    let mut keep = ListAccumulator::new(false);
    keep.push(
        raw.as_bytes(),
        decode_object(raw.as_bytes(), &schema).unwrap(),
    )
    .unwrap();
    assert_eq!(&*keep.items[0].entry.raw().unwrap(), raw.as_bytes());
    // Stored as collected (a store that keeps managedFields keeps what it is given).
    let mut s = Store::new(false);
    s.replace(acc.take(), None).unwrap();
    assert!(acc.items.is_empty());
    assert_eq!(&*s.get("ns/a").unwrap().raw().unwrap(), kept.as_bytes());
    let mut s = Store::new(true);
    s.replace(keep.take(), None).unwrap();
    assert_eq!(&*s.get("ns/a").unwrap().raw().unwrap(), kept.as_bytes());
    assert_eq!(s.get("ns/a").unwrap().uid(), Some("uid-a"));
}

#[test]
fn a_compressing_store_keeps_metadata_readable_and_objects_intact() {
    let big = "x".repeat(2000);
    let raw = format!(
        r#"{{"metadata":{{"name":"a","namespace":"ns","uid":"u","resourceVersion":"7","labels":{{"app":"web"}},"managedFields":[{{"manager":"m"}}]}},"spec":{{"nodeName":"n1","pad":"{big}"}}}}"#
    );
    let want = String::from_utf8(strip_member(
        raw.as_bytes(),
        &decode_object(raw.as_bytes(), &Schema::new(&[]))
            .unwrap()
            .managed_fields
            .unwrap(),
    ))
    .unwrap();
    let mut s = Store::with_options(true, true);
    s.add_index("node", "spec.nodeName").unwrap();
    s.upsert(raw.as_bytes()).unwrap();
    // Too small to gain: kept as is.
    s.upsert(br#"{"metadata":{"name":"b"}}"#).unwrap();
    let e = s.get("ns/a").unwrap();
    assert!(e.compressed());
    assert!(e.raw_bytes().len() < 200);
    assert_eq!(&*e.raw().unwrap(), want.as_bytes());
    assert_eq!((e.uid(), e.resource_version()), (Some("u"), Some("7")));
    assert_eq!(e.labels().collect::<Vec<_>>(), [("app", "web")]);
    assert!(!s.get("b").unwrap().compressed());
    assert_eq!(keys(&s.by_index("node", "n1").unwrap()), ["ns/a"]);
    s.add_index("app", "label:app").unwrap();
    assert_eq!(keys(&s.by_index("app", "web").unwrap()), ["ns/a"]);
    // Accumulated uncompressed, compressed by replace; tombstones come back whole.
    let mut acc = ListAccumulator::new(false);
    acc.push(
        raw.as_bytes(),
        decode_object(raw.as_bytes(), s.schema()).unwrap(),
    )
    .unwrap();
    let mut t = Store::with_options(true, true);
    t.replace(acc.take(), None).unwrap();
    assert!(t.get("ns/a").unwrap().compressed());
    assert_eq!(&*t.get("ns/a").unwrap().raw().unwrap(), want.as_bytes());
    let out = t.replace(Vec::new(), None).unwrap();
    assert_eq!(&*out.deleted[0].1, want.as_bytes());
    // Snapshots hold plain JSON.
    let snap = s.snapshot().unwrap();
    assert!(snap.windows(want.len()).any(|w| w == want.as_bytes()));
    let mut u = Store::new(true);
    assert_eq!(u.restore(&snap).unwrap(), 2);
    assert_eq!(&*u.get("ns/a").unwrap().raw().unwrap(), want.as_bytes());
}

#[test]
fn snapshot_and_restore_round_trip() {
    let mut s = Store::new(true);
    s.add_index("node", "spec.nodeName").unwrap();
    s.upsert(pod("ns", "a", "1", "n1", "web").as_bytes())
        .unwrap();
    s.upsert(pod("ns", "b", "1", "n2", "web").as_bytes())
        .unwrap();
    s.resource_version = Some("5".into());
    let snap = s.snapshot().unwrap();
    let mut t = Store::new(true);
    t.add_index("node", "spec.nodeName").unwrap();
    assert_eq!(t.restore(&snap).unwrap(), 2);
    assert_eq!(t.resource_version.as_deref(), Some("5"));
    assert_eq!(keys(&t.by_index("node", "n2").unwrap()), ["ns/b"]);
    assert_eq!(
        t.get("ns/a").unwrap().raw().unwrap(),
        s.get("ns/a").unwrap().raw().unwrap()
    );
    assert!(t.restore(b"nope").is_err());
    assert!(t.restore(&snap[..snap.len() - 3]).is_err());
    assert_eq!(t.len(), 2);
}

/// A pod of ~1.7 KB, like the others but for its name, uid, rv, node and a hash.
pub(super) fn fat_pod(i: usize, rv: usize) -> String {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        r#"{{"metadata":{{"name":"web-{h:016x}-{i}","namespace":"ns-{ns}","uid":"{h:016x}-1111-2222-3333-{i:012}","resourceVersion":"{rv}","labels":{{"app":"web","pod-template-hash":"{h:08x}"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-{h:08x}","uid":"{h:016x}","controller":true,"blockOwnerDeletion":true}}],"managedFields":[{{"manager":"kube-controller-manager","operation":"Update"}}]}},"spec":{{"nodeName":"node-{node}","containers":[{{"name":"app","image":"registry.example.com/team/web:1.2.3","ports":[{{"containerPort":8080,"protocol":"TCP"}}],"env":[{{"name":"POD_NAME","valueFrom":{{"fieldRef":{{"fieldPath":"metadata.name"}}}}}},{{"name":"LOG_LEVEL","value":"info"}}],"resources":{{"requests":{{"cpu":"100m","memory":"128Mi"}},"limits":{{"memory":"256Mi"}}}},"volumeMounts":[{{"name":"kube-api-access","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}}],"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent"}}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst","serviceAccountName":"default","schedulerName":"default-scheduler","tolerations":[{{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}}]}},"status":{{"phase":"Running","podIP":"10.{a}.{b}.{c}","hostIP":"192.168.{a}.{b}","startTime":"2026-11-27T10:{m:02}:00Z","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"2026-11-27T10:{m:02}:07Z"}}],"containerStatuses":[{{"name":"app","ready":true,"restartCount":0,"image":"registry.example.com/team/web:1.2.3","containerID":"containerd://{h:016x}{h:016x}"}}]}}}}"#,
        ns = i % 7,
        node = i % 13,
        a = i % 250,
        b = (i / 250) % 250,
        c = (i * 7) % 250,
        m = i % 60,
    )
}

fn stripped(raw: &str) -> Vec<u8> {
    let meta = decode_object(raw.as_bytes(), &Schema::new(&[])).unwrap();
    strip_member(raw.as_bytes(), &meta.managed_fields.unwrap())
}

fn accumulate(acc: &mut ListAccumulator, pods: impl IntoIterator<Item = String>) {
    for raw in pods {
        let meta = decode_object(raw.as_bytes(), &Schema::new(&[])).unwrap();
        acc.push(raw.as_bytes(), meta).unwrap();
    }
}

#[test]
fn a_compressing_store_learns_a_dictionary_from_its_first_objects() {
    let mut s = Store::with_options(true, true);
    let mut plain = 0;
    let mut with_dict = 0;
    for i in 0..200 {
        s.upsert(fat_pod(i, 1).as_bytes()).unwrap();
    }
    for key in s.list_keys() {
        let e = s.get(key).unwrap();
        assert!(e.compressed());
        match e.dict() {
            Some(_) => with_dict = with_dict.max(e.raw_bytes().len()),
            None => plain = plain.max(e.raw_bytes().len()),
        }
    }
    let d = s.compressor.dict().expect("a frozen dictionary").clone();
    assert!(d.bytes.len() <= DICT_MAX && d.bytes.len() > DICT_MAX / 2);
    // Objects compressed before the dictionary froze are LZ4 alone.
    assert!(
        plain > 0 && with_dict > 0 && with_dict * 3 < plain,
        "{with_dict} {plain}"
    );
    // Every object reads back whole after many updates and deletes.
    for i in (0..200).step_by(3) {
        let k = s.upsert(fat_pod(i, 2).as_bytes()).unwrap();
        assert!(Arc::ptr_eq(s.get(&k).unwrap().dict().unwrap(), &d));
    }
    for i in (0..200).step_by(5) {
        let raw = fat_pod(i, 1);
        let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
            .unwrap()
            .key()
            .unwrap();
        assert!(s.delete(&k).is_some());
    }
    for i in 0..200 {
        let raw = fat_pod(i, if i % 3 == 0 { 2 } else { 1 });
        let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
            .unwrap()
            .key()
            .unwrap();
        match s.get(&k) {
            Some(e) => assert_eq!(&*e.raw().unwrap(), &stripped(&raw)[..]),
            None => assert!(i % 5 == 0 && i % 3 != 0 || i % 15 == 0),
        }
    }
}

#[test]
fn replace_moves_entries_with_their_dictionary_and_the_store_adopts_it() {
    let mut acc = ListAccumulator::with_options(true, true);
    accumulate(&mut acc, (0..100).map(|i| fat_pod(i, 1)));
    let d1 = acc.compressor.dict().unwrap().clone();
    let mut s = Store::with_options(true, true);
    s.upsert(fat_pod(1000, 1).as_bytes()).unwrap();
    let out = s.replace(acc.take(), Some("1".into())).unwrap();
    assert_eq!((out.added.len(), out.updated.len()), (100, 0));
    assert_eq!(&*out.deleted[0].1, &stripped(&fat_pod(1000, 1))[..]);
    assert!(Arc::ptr_eq(s.compressor.dict().unwrap(), &d1));
    // Upserts now use the list's dictionary.
    let k = s.upsert(fat_pod(5000, 1).as_bytes()).unwrap();
    assert!(Arc::ptr_eq(s.get(&k).unwrap().dict().unwrap(), &d1));
    // A relist whose accumulator learnt another dictionary, into a store that has
    // one: entries keep the dictionary they were compressed with.
    let mut acc2 = ListAccumulator::with_options(true, true);
    accumulate(&mut acc2, (50..150).rev().map(|i| fat_pod(i, 2)));
    let d2 = acc2.compressor.dict().unwrap().clone();
    assert!(!Arc::ptr_eq(&d1, &d2));
    let out = s.replace(acc2.take(), Some("2".into())).unwrap();
    assert_eq!((out.added.len(), out.updated.len()), (50, 50));
    assert_eq!(out.deleted.len(), 51);
    for (k, raw) in &out.deleted {
        let i: usize = k.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(&**raw, &stripped(&fat_pod(i, 1))[..], "{k}");
    }
    assert!(Arc::ptr_eq(s.compressor.dict().unwrap(), &d2));
    for i in 50..150 {
        let raw = fat_pod(i, 2);
        let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
            .unwrap()
            .key()
            .unwrap();
        assert_eq!(&*s.get(&k).unwrap().raw().unwrap(), &stripped(&raw)[..]);
    }
    // The accumulator keeps its dictionary for the next list; a plain accumulator's
    // items get the store's.
    accumulate(&mut acc2, [fat_pod(7, 3)]);
    assert!(Arc::ptr_eq(acc2.items[0].entry.dict().unwrap(), &d2));
    let mut plain = ListAccumulator::new(false);
    accumulate(&mut plain, (0..20).map(|i| fat_pod(i, 4)));
    s.replace(plain.take(), None).unwrap();
    assert_eq!(s.len(), 20);
    for i in 0..20 {
        let raw = fat_pod(i, 4);
        let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
            .unwrap()
            .key()
            .unwrap();
        let e = s.get(&k).unwrap();
        assert!(Arc::ptr_eq(e.dict().unwrap(), &d2));
        assert_eq!(&*e.raw().unwrap(), &stripped(&raw)[..]);
    }
    // Only the dictionaries still used are alive.
    drop((acc, acc2));
    assert_eq!(Arc::strong_count(&d1), 1);
}

#[test]
fn compressed_snapshots_restore_and_odd_objects_survive() {
    let mut s = Store::with_options(true, true);
    s.add_index("node", "spec.nodeName").unwrap();
    for i in 0..60 {
        s.upsert(fat_pod(i, 1).as_bytes()).unwrap();
    }
    // Incompressible objects gain nothing.
    let mut x: u64 = 1;
    let noise: String = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8 + u8::from(x % 90 >= 1))
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let odd = format!(r#"{{"metadata":{{"name":"noise"}},"data":"{noise}"}}"#);
    s.upsert(odd.as_bytes()).unwrap();
    s.upsert(br#"{"metadata":{"name":"b"}}"#).unwrap();
    assert!(s.get("noise").unwrap().raw_bytes().len() > odd.len() - 20);
    // (Even a tiny object gains with the dictionary.)
    assert!(s.get("b").unwrap().compressed());
    assert_eq!(
        &*s.get("b").unwrap().raw().unwrap(),
        br#"{"metadata":{"name":"b"}}"#
    );
    assert_eq!(&*s.get("noise").unwrap().raw().unwrap(), odd.as_bytes());
    let snap = s.snapshot().unwrap();
    for restored in [Store::with_options(true, true), Store::new(true)] {
        let mut t = restored;
        t.add_index("node", "spec.nodeName").unwrap();
        assert_eq!(t.restore(&snap).unwrap(), 62);
        for k in s.list_keys() {
            assert_eq!(
                t.get(k).unwrap().raw().unwrap(),
                s.get(k).unwrap().raw().unwrap()
            );
        }
        assert_eq!(t.by_index("node", "node-3"), s.by_index("node", "node-3"));
    }
    // Damaged (cut short) bytes are an error, never a panic nor a shorter object: every
    // compressed entry, so the outcome does not hang on the map's iteration order.
    let compressed: Vec<&Key> = s
        .list_keys()
        .filter(|k| s.get(k).unwrap().compressed())
        .collect();
    assert!(!compressed.is_empty());
    for key in compressed {
        for len in [9, s.get(key).unwrap().raw_len - 1] {
            let mut e = s.get(key).unwrap().clone();
            e.raw_len = len;
            assert_eq!(e.raw(), Err(StoreError::Corrupt), "{key} cut to {len}");
        }
    }
}
