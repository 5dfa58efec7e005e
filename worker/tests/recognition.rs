//! Recognition behaviour on the real fixture photos (`worker::fixtures`: the committed
//! set and, when present, the South-Asian one): what a teacher would check — the right
//! people recognised, nobody misnamed, strangers left unknown.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use worker::engine::matching::{DecisionRule, Descriptor, Gallery};
use worker::engine::pipeline::load_image;
use worker::engine::{Face, FaceEngine};
use worker::evaluation::{Split, embed_people, scan_people};
use worker::fixtures;

fn labels() -> serde_json::Value {
    fixtures::labels().unwrap()
}

fn engine() -> &'static FaceEngine {
    static ENGINE: OnceLock<FaceEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = std::env::var_os("MODEL_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"),
            PathBuf::from,
        );
        FaceEngine::from_model_dir(&dir, "cpu", true).expect("face engine")
    })
}

fn faces(rel: &str) -> Vec<Face> {
    let image = load_image(&fixtures::photo(rel)).expect(rel);
    engine().analyze(&image).expect(rel)
}

fn largest(rel: &str) -> Descriptor {
    faces(rel)
        .into_iter()
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .unwrap_or_else(|| panic!("no face in {rel}"))
        .descriptor
}

/// Each person of a labels section registered from their first `n` photos.
fn gallery(people: &serde_json::Value, n: usize) -> Gallery<String> {
    let entries = people
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, photos)| {
            let photos = photos.as_array().unwrap();
            (
                name.clone(),
                photos[..n]
                    .iter()
                    .map(|p| largest(p.as_str().unwrap()))
                    .collect(),
            )
        })
        .collect();
    Gallery::new(entries, DecisionRule::DEFAULT)
}

fn western_gallery() -> &'static Gallery<String> {
    static G: OnceLock<Gallery<String>> = OnceLock::new();
    G.get_or_init(|| gallery(&labels()["people"], 2))
}

#[test]
fn every_other_photo_of_a_registered_person_is_identified() {
    let labels = labels();
    let g = western_gallery();
    for (name, photos) in labels["people"].as_object().unwrap() {
        for photo in &photos.as_array().unwrap()[2..] {
            let rel = photo.as_str().unwrap();
            let d = g.decide(&largest(rel));
            let (who, dist) = d.nearest.clone().unwrap();
            assert!(
                d.accepted && &who == name,
                "{rel}: got {who} at {dist:.3}, accepted {}",
                d.accepted
            );
        }
    }
}

#[test]
fn group_photos_find_everyone_present_and_misname_nobody() {
    let labels = labels();
    let g = western_gallery();
    for (rel, group) in labels["groups"].as_object().unwrap() {
        let found = faces(rel);
        let (min, max) = (
            group["faces_min"].as_u64().unwrap(),
            group["faces_max"].as_u64().unwrap(),
        );
        assert!(
            (min..=max).contains(&(found.len() as u64)),
            "{rel}: {} faces, expected {min}..={max}",
            found.len()
        );
        let descriptors: Vec<_> = found.iter().map(|f| f.descriptor).collect();
        let named: Vec<String> = g
            .assign(&descriptors)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        let present: Vec<&str> = group["present"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        for p in &present {
            assert!(
                named.iter().any(|n| n == p),
                "{rel}: {p} not found (named {named:?})"
            );
        }
        for n in &named {
            assert!(
                present.contains(&n.as_str()),
                "{rel}: {n} misnamed (present {present:?})"
            );
        }
    }
}

#[test]
fn six_people_yields_six_faces() {
    assert_eq!(faces("groups/six_people.jpg").len(), 6);
}

#[test]
fn the_unregistered_person_comes_out_unknown() {
    let d = western_gallery().decide(&largest("edge/unregistered_person.png"));
    assert!(!d.accepted, "stranger accepted as {:?}", d.nearest);
}

#[test]
fn edge_images_are_handled() {
    let g = western_gallery();
    // RGBA PNG and a 240p frame: still Obama.
    for rel in ["edge/rgba_32bit.png", "edge/obama_240p.jpg"] {
        let d = g.decide(&largest(rel));
        assert!(
            d.accepted && d.nearest.as_ref().unwrap().0 == "obama",
            "{rel}: {d:?}"
        );
    }
    // Cut-off and tiny faces: no error; if anybody is named, it is Obama.
    for rel in [
        "edge/partial_face1.jpg",
        "edge/partial_face2.jpg",
        "edge/small_face.jpg",
    ] {
        for face in faces(rel) {
            let d = g.decide(&face.descriptor);
            if d.accepted {
                assert_eq!(d.nearest.unwrap().0, "obama", "{rel}");
            }
        }
    }
}

#[test]
fn south_asian_open_set_false_accept_is_at_most_one_percent() {
    let Some(set) =
        fixtures::south_asian("south_asian_open_set_false_accept_is_at_most_one_percent")
    else {
        return;
    };
    let people = scan_people(&set.join("people")).unwrap();
    let embedded = embed_people(engine(), &people).unwrap();
    let split = Split::new(&embedded, 3);
    let ours = split.measure(DecisionRule::DEFAULT);
    let dlib = split.measure(DecisionRule::DLIB_0_6);
    eprintln!("default: {ours:?}\ndlib 0.6: {dlib:?}");
    assert!(split.probes() >= 80, "only {} probes", split.probes());
    assert!(ours.open_set_false_accept <= 0.01, "{ours:?}");
    assert!(ours.misidentification <= 0.01, "{ours:?}");
    // The reason for not taking dlib's 0.6: it accepts many strangers on these faces.
    assert!(dlib.open_set_false_accept > 0.05, "{dlib:?}");
    assert!(ours.genuine_acceptance >= 0.5, "{ours:?}");
}

#[test]
fn south_asian_groups_misname_nobody() {
    // The strict default rule may leave a registered face in a small, low-resolution
    // group photo unknown (karthik_and_rohit.jpg is 299×169); what it must never do is
    // put a name on the wrong face.
    if fixtures::south_asian("south_asian_groups_misname_nobody").is_none() {
        return;
    }
    let labels = fixtures::south_asian_labels().unwrap();
    let g = gallery(&labels["people"], 3);
    let mut found = 0;
    for (rel, group) in labels["groups"].as_object().unwrap() {
        let faces = faces(rel);
        let descriptors: Vec<_> = faces.iter().map(|f| f.descriptor).collect();
        let boxes = group["boxes_x0y0x1y1"].as_object().unwrap();
        for (face, assigned) in faces.iter().zip(g.assign(&descriptors)) {
            let Some((who, dist)) = assigned else {
                continue;
            };
            let b: Vec<f32> = boxes
                .get(&who)
                .unwrap_or_else(|| panic!("{rel}: {who} named but not in the photo ({dist:.3})"))
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let [x1, y1, x2, y2] = face.detection.bbox;
            let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
            assert!(
                cx > b[0] && cx < b[2] && cy > b[1] && cy < b[3],
                "{rel}: {who} named on the wrong face"
            );
            found += 1;
        }
    }
    eprintln!("south-asian groups: {found} of 5 registered faces recognised");
}
