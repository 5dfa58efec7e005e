//! A 100 MP photo is accepted, decoded reduced to the working size, and its faces are
//! found where they are in the photo's own pixels.

use std::path::PathBuf;

use image::{Rgb, RgbImage};
use worker::engine::pipeline::{FaceEngine, PhotoLimits, load_image};
use worker::fixtures;

fn model_dir() -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/models"))
}

#[test]
fn a_100_mp_photo_is_reduced_and_its_faces_are_found_in_place() {
    const WORKING: u64 = 4_000_000;
    let engine = FaceEngine::from_model_dir(&model_dir(), "cpu", false)
        .expect("models in MODEL_DIR")
        .with_limits(PhotoLimits {
            max_working_pixels: WORKING,
            ..PhotoLimits::default()
        });

    // A 12000×8330 (99.96 MP) grey wall with a group photo, three times its size, on it.
    let group = load_image(&fixtures::photo("groups/six_people.jpg")).unwrap();
    let reference = engine.detect(&group).unwrap();
    assert!(reference.len() >= 6);
    const ZOOM: u32 = 3;
    const AT: (u32, u32) = (5_000, 3_000);
    let pasted = image::imageops::resize(
        &group,
        group.width() * ZOOM,
        group.height() * ZOOM,
        image::imageops::FilterType::Triangle,
    );
    let mut wall = RgbImage::from_pixel(12_000, 8_330, Rgb([128, 128, 128]));
    image::imageops::replace(&mut wall, &pasted, AT.0.into(), AT.1.into());
    drop(pasted);
    let mut png = Vec::new();
    wall.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    drop(wall);

    let photo = engine
        .decode(&png, "wall.png")
        .expect("a 100 MP photo is accepted");
    assert_eq!(photo.original, (12_000, 8_330));
    let (w, h) = photo.image.dimensions();
    assert!(u64::from(w) * u64::from(h) <= WORKING, "{w}×{h}");
    assert!(photo.is_reduced());

    let (found, crops) = engine
        .analyze_photo(&photo, |image, bbox| (image.dimensions(), bbox))
        .unwrap();
    assert_eq!(found.detected, found.faces.len());
    assert_eq!(crops.len(), found.faces.len());
    // Crops are cut from the working image, in its coordinates.
    assert!(
        crops
            .iter()
            .all(|(dims, b)| *dims == (w, h) && b[2] <= w as f32 + 1.0)
    );
    let centre = |b: [f32; 4]| ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    for r in &reference {
        let (cx, cy) = centre(r.bbox);
        let expected = (
            cx * ZOOM as f32 + AT.0 as f32,
            cy * ZOOM as f32 + AT.1 as f32,
        );
        let width = (r.bbox[2] - r.bbox[0]) * ZOOM as f32;
        let hit = found.faces.iter().find(|f| {
            let (x, y) = centre(f.detection.bbox);
            (x - expected.0).hypot(y - expected.1) < 0.2 * width
        });
        let hit = hit.unwrap_or_else(|| {
            panic!(
                "no face near {expected:?} (width {width}) in {:?}",
                found
                    .faces
                    .iter()
                    .map(|f| f.detection.bbox)
                    .collect::<Vec<_>>()
            )
        });
        let ratio = (hit.detection.bbox[2] - hit.detection.bbox[0]) / width;
        assert!((0.75..1.33).contains(&ratio), "width ratio {ratio}");
        // Landmarks are mapped too: the left eye lies inside the face box.
        let [ex, ey] = hit.detection.landmarks[0];
        let b = hit.detection.bbox;
        assert!(ex > b[0] && ex < b[2] && ey > b[1] && ey < b[3], "{hit:?}");
    }
}
