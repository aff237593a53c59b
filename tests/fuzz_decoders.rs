//! Property tests of everything bale decodes from files others can write:
//! pointer files, manifests, and the paths in them. Any input gives a value
//! or a clean error, never a panic; what bale encodes decodes to itself.

use std::path::Path;

use bale::hash::Hash;
use bale::manifest::{Manifest, ManifestEntry};
use bale::paths::check_relative;
use bale::pointer::PointerFile;
use proptest::prelude::*;

/// Path components, reserved and odd ones included.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(".bale".to_owned()),
        Just(".git".to_owned()),
        Just(String::new()),
        "[ -~]{1,6}",
        "\\PC{1,4}",
        Just("new\nline".to_owned()),
        Just("back\\slash".to_owned()),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..5).prop_map(|c| c.join("/"))
}

fn entry() -> impl Strategy<Value = ManifestEntry> {
    (path(), any::<u128>(), any::<u64>(), any::<bool>()).prop_map(|(path, h, size, x)| {
        ManifestEntry {
            path,
            hash: Hash(h),
            size,
            executable: x,
        }
    })
}

proptest! {
    #[test]
    fn path_validation_accepts_only_plain_relative_paths(p in path()) {
        let ok = check_relative(&p).is_ok();
        let plain = !p.is_empty()
            && !p.contains('\0')
            && p.split('/').all(|c| !matches!(c, "" | "." | ".." | ".bale" | ".git"));
        prop_assert_eq!(ok, plain, "{:?}", p);
    }

    #[test]
    fn manifests_built_from_anything_round_trip_or_are_refused(entries in prop::collection::vec(entry(), 0..12)) {
        if let Ok(m) = Manifest::new(entries) {
            let bytes = m.encode();
            let back = Manifest::decode(&bytes, m.hash()).expect("an encoded manifest decodes");
            prop_assert_eq!(back.encode(), bytes);
            prop_assert_eq!(back, m);
        }
    }

    #[test]
    fn manifest_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Manifest::decode(&bytes, Hash(0));
    }

    #[test]
    fn mangled_manifests_never_panic(entries in prop::collection::vec(entry(), 1..6), cut in any::<usize>(), flip in any::<u8>()) {
        if let Ok(m) = Manifest::new(entries) {
            let mut bytes = m.encode();
            let i = cut % bytes.len();
            bytes[i] ^= flip;
            let _ = Manifest::decode(&bytes, Hash(0));
            bytes.truncate(i);
            let _ = Manifest::decode(&bytes, Hash(0));
        }
    }

    #[test]
    fn pointer_parsing_never_panics(text in "\\PC{0,300}") {
        let _ = PointerFile::parse(&text, Path::new("p.bale"));
    }

    #[test]
    fn pointer_like_yaml_parses_or_is_refused_and_round_trips(
        p in path(), h in any::<u128>(), size in any::<u64>(), dir in any::<bool>(), extra in "[a-z]{1,6}"
    ) {
        let text = format!(
            "outs:\n- path: {p:?}\n  hash: '{}'\n  type: {}\n  size: {size}\n  {extra}: kept\n",
            Hash(h),
            if dir { "dir" } else { "file" }
        );
        if let Ok(file) = PointerFile::parse(&text, Path::new("p.bale")) {
            prop_assert!(check_relative(&file.outs[0].path).is_ok());
            let again = serde_yaml::to_string(&file).unwrap();
            prop_assert_eq!(PointerFile::parse(&again, Path::new("p.bale")).unwrap(), file);
        }
    }
}
