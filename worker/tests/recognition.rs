//! Recognition behaviour on the real fixture photos (`worker::fixtures`: the committed
//! set and, when present, the South-Asian one): what a teacher would check — the right
//! people recognised, nobody misnamed, strangers left unknown. Every check runs for both
//! face models (`dlib-resnet` with MTCNN, `arcface-mbf` with SCRFD) under each model's
//! default rule.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::FaceModel;
use worker::engine::matching::{DecisionRule, Descriptor, Gallery};
use worker::engine::pipeline::load_image;
use worker::engine::{Face, FaceEngine};
use worker::evaluation::{Split, embed_people, scan_people};
use worker::fixtures;

const DLIB: FaceModel = FaceModel::DlibResnet;
const ARCFACE: FaceModel = FaceModel::ArcfaceMbf;

fn labels() -> serde_json::Value {
    fixtures::labels().unwrap()
}

fn engine(model: FaceModel) -> &'static FaceEngine {
    static DLIB_ENGINE: OnceLock<FaceEngine> = OnceLock::new();
    static ARCFACE_ENGINE: OnceLock<FaceEngine> = OnceLock::new();
    let cell = match model {
        FaceModel::DlibResnet => &DLIB_ENGINE,
        FaceModel::ArcfaceMbf => &ARCFACE_ENGINE,
    };
    cell.get_or_init(|| {
        let dir = std::env::var_os("MODEL_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/models"),
            PathBuf::from,
        );
        FaceEngine::open(&dir, model, model.default_detector(), "cpu", true).expect("face engine")
    })
}

/// The faces of a classroom or group photo.
fn faces(model: FaceModel, rel: &str) -> Vec<Face> {
    let image = load_image(&fixtures::photo(rel)).expect(rel);
    engine(model).analyze(&image).expect(rel)
}

/// The largest face of a portrait (a registration photo or a probe of one person).
fn largest(model: FaceModel, rel: &str) -> Descriptor {
    let image = load_image(&fixtures::photo(rel)).expect(rel);
    engine(model)
        .analyze_portrait(&image)
        .expect(rel)
        .into_iter()
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .unwrap_or_else(|| panic!("no face in {rel}"))
        .descriptor
}

/// Each person of a labels section registered from their first `n` photos.
fn gallery(model: FaceModel, people: &serde_json::Value, n: usize) -> Gallery<String> {
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
                    .map(|p| largest(model, p.as_str().unwrap()))
                    .collect(),
            )
        })
        .collect();
    Gallery::new(entries, DecisionRule::for_model(model))
}

fn western_gallery(model: FaceModel) -> &'static Gallery<String> {
    static DLIB_G: OnceLock<Gallery<String>> = OnceLock::new();
    static ARCFACE_G: OnceLock<Gallery<String>> = OnceLock::new();
    let cell = match model {
        FaceModel::DlibResnet => &DLIB_G,
        FaceModel::ArcfaceMbf => &ARCFACE_G,
    };
    cell.get_or_init(|| gallery(model, &labels()["people"], 2))
}

#[test]
fn every_other_photo_of_a_registered_person_is_identified_dlib() {
    every_other_photo_of_a_registered_person_is_identified(DLIB);
}

#[test]
fn every_other_photo_of_a_registered_person_is_identified_arcface() {
    every_other_photo_of_a_registered_person_is_identified(ARCFACE);
}

fn every_other_photo_of_a_registered_person_is_identified(model: FaceModel) {
    let labels = labels();
    let g = western_gallery(model);
    for (name, photos) in labels["people"].as_object().unwrap() {
        for photo in &photos.as_array().unwrap()[2..] {
            let rel = photo.as_str().unwrap();
            let d = g.decide(&largest(model, rel));
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
fn group_photos_find_everyone_present_and_misname_nobody_dlib() {
    group_photos_find_everyone_present_and_misname_nobody(DLIB);
}

#[test]
fn group_photos_find_everyone_present_and_misname_nobody_arcface() {
    group_photos_find_everyone_present_and_misname_nobody(ARCFACE);
}

fn group_photos_find_everyone_present_and_misname_nobody(model: FaceModel) {
    let labels = labels();
    let g = western_gallery(model);
    for (rel, group) in labels["groups"].as_object().unwrap() {
        let found = faces(model, rel);
        let (min, max) = (
            group["faces_min"].as_u64().unwrap(),
            group["faces_max"].as_u64().unwrap(),
        );
        assert!(
            (min..=max).contains(&(found.len() as u64)),
            "{rel}: {} faces, expected {min}..={max}",
            found.len()
        );
        let descriptors: Vec<_> = found.iter().map(|f| f.descriptor.clone()).collect();
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
    assert_eq!(faces(DLIB, "groups/six_people.jpg").len(), 6);
    assert_eq!(faces(ARCFACE, "groups/six_people.jpg").len(), 6);
}

#[test]
fn the_unregistered_person_comes_out_unknown() {
    for model in [DLIB, ARCFACE] {
        let d = western_gallery(model).decide(&largest(model, "edge/unregistered_person.png"));
        assert!(!d.accepted, "{model}: stranger accepted as {:?}", d.nearest);
    }
}

#[test]
fn edge_images_are_handled_dlib() {
    edge_images_are_handled(DLIB);
}

#[test]
fn edge_images_are_handled_arcface() {
    edge_images_are_handled(ARCFACE);
}

fn edge_images_are_handled(model: FaceModel) {
    let g = western_gallery(model);
    // RGBA PNG and a 240p frame: still Obama.
    for rel in ["edge/rgba_32bit.png", "edge/obama_240p.jpg"] {
        let d = g.decide(&largest(model, rel));
        assert!(
            d.accepted && d.nearest.as_ref().unwrap().0 == "obama",
            "{model} {rel}: {d:?}"
        );
    }
    // Cut-off and tiny faces: no error; if anybody is named, it is Obama.
    for rel in [
        "edge/partial_face1.jpg",
        "edge/partial_face2.jpg",
        "edge/small_face.jpg",
    ] {
        for face in faces(model, rel) {
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
    let embedded = embed_people(engine(DLIB), &people).unwrap();
    let split = Split::new(DLIB, &embedded, 3);
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

/// ArcFace's rule on the same protocol: strangers kept out as strictly as with dlib,
/// and almost every registered face found.
#[test]
fn south_asian_arcface_keeps_strangers_out_and_finds_the_students() {
    let Some(set) =
        fixtures::south_asian("south_asian_arcface_keeps_strangers_out_and_finds_the_students")
    else {
        return;
    };
    let people = scan_people(&set.join("people")).unwrap();
    let embedded = embed_people(engine(ARCFACE), &people).unwrap();
    let split = Split::new(ARCFACE, &embedded, 3);
    let ours = split.measure(DecisionRule::ARCFACE);
    eprintln!("arcface default: {ours:?}");
    assert!(split.probes() >= 60, "only {} probes", split.probes());
    assert!(ours.open_set_false_accept <= 0.01, "{ours:?}");
    assert!(ours.misidentification <= 0.01, "{ours:?}");
    assert!(ours.genuine_acceptance >= ARCFACE_MIN_GENUINE, "{ours:?}");
}

/// The target for ArcFace on the South-Asian set (measured: 98.9 %, see the
/// README's table).
const ARCFACE_MIN_GENUINE: f64 = 0.97;

#[test]
fn south_asian_groups_misname_nobody_dlib() {
    if fixtures::south_asian("south_asian_groups_misname_nobody_dlib").is_some() {
        south_asian_groups_misname_nobody(DLIB);
    }
}

#[test]
fn south_asian_groups_misname_nobody_arcface() {
    if fixtures::south_asian("south_asian_groups_misname_nobody_arcface").is_some() {
        south_asian_groups_misname_nobody(ARCFACE);
    }
}

fn south_asian_groups_misname_nobody(model: FaceModel) {
    // The strict default rule may leave a registered face in a small, low-resolution
    // group photo unknown (karthik_and_rohit.jpg is 299×169); what it must never do is
    // put a name on the wrong face.
    let labels = fixtures::south_asian_labels().unwrap();
    let g = gallery(model, &labels["people"], 3);
    let mut found = 0;
    for (rel, group) in labels["groups"].as_object().unwrap() {
        let faces = faces(model, rel);
        let descriptors: Vec<_> = faces.iter().map(|f| f.descriptor.clone()).collect();
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
    eprintln!("{model}: south-asian groups: {found} of 5 registered faces recognised");
}

/// `eval` on a folder with an unreadable photo and an oversized one: both are listed as
/// skipped with their reason and the other photos are still measured.
#[test]
fn eval_skips_unreadable_and_oversized_photos_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    for person in ["obama", "biden"] {
        let folder = dir.path().join(person);
        std::fs::create_dir_all(&folder).unwrap();
        let labels = labels();
        for photo in labels["people"][person].as_array().unwrap() {
            let rel = photo.as_str().unwrap();
            let name = std::path::Path::new(rel).file_name().unwrap();
            std::fs::copy(fixtures::photo(rel), folder.join(name)).unwrap();
        }
    }
    // Text named like a photo, and a PNG header declaring 100000×100000 pixels.
    std::fs::write(dir.path().join("obama/zz_cut.jpg"), b"not a photo at all").unwrap();
    let mut png = Vec::new();
    image::RgbImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    std::fs::write(dir.path().join("biden/zz_giant.png"), &png).unwrap();

    let people = scan_people(dir.path()).unwrap();
    let embedded = embed_people(engine(DLIB), &people).unwrap();
    let split = Split::new(DLIB, &embedded, 2);
    let report = split.report(people.len(), 2);
    let skipped: Vec<&str> = report
        .skipped_photos
        .iter()
        .map(|s| s.photo.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(skipped.len(), 2, "{:?}", report.skipped_photos);
    assert!(skipped.contains(&"zz_cut.jpg") && skipped.contains(&"zz_giant.png"));
    assert!(report.skipped_photos.iter().all(|s| !s.reason.is_empty()));
    assert!(report.probes >= 2, "{} probes", report.probes);
}
