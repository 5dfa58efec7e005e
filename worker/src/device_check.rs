//! `attendance-worker device-check`: what a GPU machine must show in one call, and the
//! same on the CPU (a test runs it there in its quick form, so that the code the GPU
//! runs is exercised in CI):
//!
//! - parity against the committed CPU goldens ([`crate::golden`], the parity tests'
//!   own comparisons and tolerances): MTCNN, dlib (shape predictor and ResNet), SCRFD,
//!   ArcFace (network alone, from the golden keypoints, through SCRFD);
//! - faces/s of each embedder (dlib ResNet on 150×150 chips, ArcFace on 112×112 crops)
//!   at several batch sizes;
//! - detection ms (MTCNN and SCRFD) for a 1366×768 and a 4000×3000 photo;
//! - end-to-end photos/s of the real worker on synthesised classroom photos
//!   ([`crate::throughput`], in-process) at several `WORKER_CONCURRENCY` values.
//!
//! Each item prints one `PASS`/`FAIL`/`INFO` line as it finishes; the whole is also
//! returned as one JSON-serialisable [`Summary`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use common::FaceModel;
use image::RgbImage;
use serde::Serialize;

use crate::engine::arcface::ArcFaceEmbedder;
use crate::engine::dlib::face_chip::face_chip;
use crate::engine::dlib::resnet::FaceDescriptor;
use crate::engine::dlib::shape_predictor::ShapePredictor;
use crate::engine::embedder::rect_from_box;
use crate::engine::model_files::{self, ModelPaths, names};
use crate::engine::mtcnn::Mtcnn;
use crate::engine::pipeline::load_image;
use crate::engine::scrfd::{Scrfd, ScrfdConfig};
use crate::engine::{EngineError, device};
use crate::fixtures;
use crate::golden::{self, Check, GoldenError, PhotoSet, Selection};
use crate::throughput::{self, Mode, ThroughputError};

#[derive(Debug, thiserror::Error)]
pub enum DeviceCheckError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Golden(#[from] GoldenError),
    #[error(transparent)]
    Throughput(#[from] ThroughputError),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub model_dir: PathBuf,
    /// `cpu`, `cuda:N` or `auto`.
    pub device: String,
    /// Few photos, small batches, one timed run each: for the CPU test.
    pub quick: bool,
    /// Embedder batch sizes.
    pub batches: Vec<usize>,
    /// Detection photo sizes.
    pub detection_sizes: Vec<(u32, u32)>,
    /// `WORKER_CONCURRENCY` values of the end-to-end runs.
    pub concurrency: Vec<usize>,
    /// The pipelines checked (parity, embedder and detector speed): their model files
    /// must be in `model_dir`, the others' need not be.
    pub models: Vec<FaceModel>,
    /// The face models of the end-to-end runs (among `models`).
    pub end_to_end: Vec<FaceModel>,
    /// Classroom photos per end-to-end run.
    pub photos: usize,
    pub faces: usize,
    /// Timed runs per measurement (the median is reported).
    pub runs: usize,
}

impl Options {
    /// The full check (the GPU's), or the quick one.
    pub fn new(model_dir: PathBuf, device: String, quick: bool) -> Self {
        if quick {
            Self {
                model_dir,
                device,
                quick,
                batches: vec![1, 4],
                detection_sizes: vec![(1366, 768)],
                concurrency: vec![1, 2],
                models: FaceModel::ALL.to_vec(),
                end_to_end: vec![FaceModel::DlibResnet],
                photos: 2,
                faces: 30,
                runs: 1,
            }
        } else {
            Self {
                model_dir,
                device,
                quick,
                batches: vec![1, 16, 64, 256],
                detection_sizes: vec![(1366, 768), (4000, 3000)],
                concurrency: vec![1, 8],
                models: FaceModel::ALL.to_vec(),
                end_to_end: FaceModel::ALL.to_vec(),
                photos: 24,
                faces: 30,
                runs: 5,
            }
        }
    }

    /// Checks only `models`' pipelines (e.g. the one whose files were carried).
    pub fn only(mut self, models: &[FaceModel]) -> Self {
        self.models = models.to_vec();
        self.end_to_end.retain(|m| models.contains(m));
        if self.end_to_end.is_empty() {
            self.end_to_end = models.to_vec();
        }
        self
    }
}

/// Everything measured, as printed at the end.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub device: String,
    pub quick: bool,
    pub passed: bool,
    pub parity: Vec<Check>,
    /// Embedder → batch size → faces/s.
    pub faces_per_second: BTreeMap<&'static str, BTreeMap<usize, f64>>,
    /// Detector → `WxH` → ms per photo (median).
    pub detection_ms: BTreeMap<&'static str, BTreeMap<String, f64>>,
    pub end_to_end: Vec<throughput::Report>,
    /// Steps that could not run, with why.
    pub errors: Vec<String>,
    pub seconds: f64,
}

/// Runs every item, printing a line per item through `say`. Items that fail to run are
/// recorded (and fail the check) without stopping the others.
pub async fn run(options: &Options, mut say: impl FnMut(&str)) -> Summary {
    let start = Instant::now();
    let mut summary = Summary {
        device: options.device.clone(),
        quick: options.quick,
        passed: false,
        parity: Vec::new(),
        faces_per_second: BTreeMap::new(),
        detection_ms: BTreeMap::new(),
        end_to_end: Vec::new(),
        errors: Vec::new(),
        seconds: 0.0,
    };
    let networks = {
        let (dir, spec) = (options.model_dir.clone(), options.device.clone());
        let models = options.models.clone();
        tokio::task::spawn_blocking(move || Networks::load(&dir, &spec, &models)).await
    };
    match networks {
        Ok(Ok(networks)) => {
            say(&format!("INFO device {:?}", networks.device));
            let networks = std::sync::Arc::new(networks);
            let opts = options.clone();
            let nets = networks.clone();
            // The engine's calls are blocking; the lines are collected and printed
            // after each step.
            let steps: [(&str, StepFn); 3] = [
                ("parity", parity_step),
                ("embedders", embedder_step),
                ("detection", detection_step),
            ];
            for (name, step) in steps {
                let (opts, nets) = (opts.clone(), nets.clone());
                match tokio::task::spawn_blocking(move || step(&nets, &opts)).await {
                    Ok(Ok(part)) => {
                        for line in &part.lines {
                            say(line);
                        }
                        summary.parity.extend(part.parity);
                        for (k, v) in part.faces_per_second {
                            summary.faces_per_second.insert(k, v);
                        }
                        for (k, v) in part.detection_ms {
                            summary.detection_ms.insert(k, v);
                        }
                    }
                    Ok(Err(e)) => {
                        let msg = format!("{name}: {}", common::error_chain(&e));
                        say(&format!("FAIL {msg}"));
                        summary.errors.push(msg);
                    }
                    Err(e) => {
                        let msg = format!("{name}: the step panicked: {e}");
                        say(&format!("FAIL {msg}"));
                        summary.errors.push(msg);
                    }
                }
            }
            drop(networks);
        }
        Ok(Err(e)) => {
            let msg = format!("loading the networks: {}", common::error_chain(&e));
            say(&format!("FAIL {msg}"));
            summary.errors.push(msg);
        }
        Err(e) => {
            let msg = format!("loading the networks panicked: {e}");
            say(&format!("FAIL {msg}"));
            summary.errors.push(msg);
        }
    }
    for &model in &options.end_to_end {
        for &concurrency in &options.concurrency {
            let run = throughput::Options {
                photos: options.photos,
                faces: options.faces,
                concurrency,
                model,
                detector: None,
                device: options.device.clone(),
                model_dir: options.model_dir.clone(),
                mode: Mode::InProcess,
                timeout: Duration::from_secs(600),
            };
            match throughput::run(&run).await {
                Ok(report) => {
                    // The worker found (nearly) every seated face and every person.
                    let ok = report.recall >= 0.99
                        && report.false_present == 0
                        && report.faces_found_per_photo >= report.faces_per_photo as f64 * 0.9;
                    say(&format!(
                        "{} end_to_end {model} concurrency {concurrency}: {} photos in {:.2} s = \
                         {:.2} photos/s ({:.0}/min); {:.1} faces found per photo of {}; recall {:.3}, \
                         {} false present",
                        if ok { "PASS" } else { "FAIL" },
                        report.photos,
                        report.wall_seconds,
                        report.photos_per_second,
                        report.photos_per_minute,
                        report.faces_found_per_photo,
                        report.faces_per_photo,
                        report.recall,
                        report.false_present,
                    ));
                    if !ok {
                        summary
                            .errors
                            .push(format!("end_to_end {model} concurrency {concurrency}: recall {:.3}, faces {:.1}", report.recall, report.faces_found_per_photo));
                    }
                    summary.end_to_end.push(report);
                }
                Err(e) => {
                    let msg = format!(
                        "end_to_end {model} concurrency {concurrency}: {}",
                        common::error_chain(&e)
                    );
                    say(&format!("FAIL {msg}"));
                    summary.errors.push(msg);
                }
            }
        }
    }
    summary.passed = summary.errors.is_empty()
        && !summary.parity.is_empty()
        && summary.parity.iter().all(|c| c.passed);
    summary.seconds = start.elapsed().as_secs_f64();
    say(&format!(
        "{} device-check on {} in {:.0} s",
        if summary.passed { "PASS" } else { "FAIL" },
        summary.device,
        summary.seconds
    ));
    summary
}

/// The networks of the checked pipelines, on the device (the shape predictor is CPU
/// code everywhere).
struct Networks {
    device: Device,
    dlib: Option<DlibNets>,
    arcface: Option<ArcfaceNets>,
}

/// `dlib-resnet`'s: MTCNN, the shape predictor, the ResNet.
struct DlibNets {
    mtcnn: Mtcnn,
    predictor: ShapePredictor,
    resnet: FaceDescriptor,
}

/// `arcface-mbf`'s: SCRFD and MobileFaceNet.
struct ArcfaceNets {
    arcface: ArcFaceEmbedder,
    /// At the photo's own resolution only, as the golden generator runs it.
    scrfd_native: Scrfd,
    /// As the engine runs it.
    scrfd: Scrfd,
}

impl Networks {
    fn load(
        dir: &std::path::Path,
        spec: &str,
        models: &[FaceModel],
    ) -> Result<Self, DeviceCheckError> {
        let device = device::select(spec)?;
        let mut networks = Self {
            device,
            dlib: None,
            arcface: None,
        };
        for &model in models {
            model_files::verify_files(
                dir,
                &model_files::files_for_pipeline(model, model.default_detector()),
            )?;
            let device = &networks.device;
            match model {
                FaceModel::DlibResnet => {
                    let paths = ModelPaths::in_dir(dir);
                    networks.dlib = Some(DlibNets {
                        mtcnn: Mtcnn::load(&paths.pnet, &paths.rnet, &paths.onet, device)?,
                        predictor: ShapePredictor::load(&paths.shape_predictor)?,
                        resnet: FaceDescriptor::load(&paths.resnet, device)?,
                    });
                }
                FaceModel::ArcfaceMbf => {
                    let scrfd_file = dir.join(names::SCRFD);
                    networks.arcface = Some(ArcfaceNets {
                        arcface: ArcFaceEmbedder::load(&dir.join(names::ARCFACE), device)?,
                        scrfd_native: Scrfd::load_with(
                            &scrfd_file,
                            device,
                            device.is_cpu(),
                            ScrfdConfig {
                                overview_side: 0,
                                ..ScrfdConfig::default()
                            },
                        )?,
                        scrfd: Scrfd::load(&scrfd_file, device)?,
                    });
                }
            }
        }
        Ok(networks)
    }
}

/// What one blocking step produced.
#[derive(Default)]
struct Part {
    lines: Vec<String>,
    parity: Vec<Check>,
    faces_per_second: BTreeMap<&'static str, BTreeMap<usize, f64>>,
    detection_ms: BTreeMap<&'static str, BTreeMap<String, f64>>,
}

type StepFn = fn(&Networks, &Options) -> Result<Part, DeviceCheckError>;

fn parity_step(nets: &Networks, options: &Options) -> Result<Part, DeviceCheckError> {
    let selection = Selection {
        set: PhotoSet::Committed,
        max_photos: options.quick.then_some(3),
    };
    let max_crops = options.quick.then_some(4);
    let mut part = Part::default();
    let mut checks = Vec::new();
    if let Some(d) = &nets.dlib {
        checks.push(golden::mtcnn(&d.mtcnn, selection)?);
        checks.push(golden::dlib(&d.predictor, &d.resnet, selection)?);
    }
    if let Some(a) = &nets.arcface {
        checks.push(golden::scrfd(&a.scrfd_native, selection)?);
        checks.push(golden::arcface_network(&a.arcface, max_crops)?);
        checks.push(golden::arcface_from_keypoints(&a.arcface, selection)?);
        checks.push(golden::arcface_through_scrfd(
            &a.arcface,
            &a.scrfd_native,
            selection,
        )?);
    }
    for check in checks {
        part.lines.push(check.line());
        part.parity.push(check);
    }
    Ok(part)
}

/// Median seconds of `runs` calls after one warm-up call.
fn median_s(
    runs: usize,
    mut f: impl FnMut() -> Result<(), EngineError>,
) -> Result<f64, EngineError> {
    f()?;
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn embedder_step(nets: &Networks, options: &Options) -> Result<Part, DeviceCheckError> {
    let mut part = Part::default();
    let six = load_image(&fixtures::photo("groups/six_people.jpg"))?;
    let fmt = |m: &BTreeMap<usize, f64>| {
        m.iter()
            .map(|(b, v)| format!("batch {b}: {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(d) = &nets.dlib {
        // The group photo's faces, aligned as the engine aligns them.
        let chips: Vec<RgbImage> = d
            .mtcnn
            .detect(&six)?
            .iter()
            .map(|f| face_chip(&six, &d.predictor.predict(&six, rect_from_box(&f.bbox))))
            .collect();
        let mut rates = BTreeMap::new();
        for &batch in &options.batches {
            let b: Vec<RgbImage> = chips.iter().cycle().take(batch).cloned().collect();
            let s = median_s(options.runs, || d.resnet.embed(&b).map(drop))?;
            rates.insert(batch, batch as f64 / s);
        }
        part.lines
            .push(format!("INFO dlib ResNet 150x150 faces/s: {}", fmt(&rates)));
        part.faces_per_second.insert("dlib_resnet", rates);
    }
    if let Some(a) = &nets.arcface {
        let crops: Vec<RgbImage> = a
            .scrfd
            .detect(&six)?
            .iter()
            .map(|f| crate::engine::arcface::alignment::norm_crop(&six, &f.kps))
            .collect::<Result<_, _>>()?;
        let mut rates = BTreeMap::new();
        for &batch in &options.batches {
            let b: Vec<RgbImage> = crops.iter().cycle().take(batch).cloned().collect();
            let s = median_s(options.runs, || a.arcface.embed_crops(&b).map(drop))?;
            rates.insert(batch, batch as f64 / s);
        }
        part.lines
            .push(format!("INFO ArcFace 112x112 faces/s: {}", fmt(&rates)));
        part.faces_per_second.insert("arcface_mbf", rates);
    }
    Ok(part)
}

fn detection_step(nets: &Networks, options: &Options) -> Result<Part, DeviceCheckError> {
    let mut part = Part::default();
    let six = load_image(&fixtures::photo("groups/six_people.jpg"))?;
    let mut mtcnn = BTreeMap::new();
    let mut scrfd = BTreeMap::new();
    for &(w, h) in &options.detection_sizes {
        let img = image::imageops::resize(&six, w, h, image::imageops::FilterType::Triangle);
        let size = format!("{w}x{h}");
        let mut line = format!("INFO detection {size}:");
        if let Some(d) = &nets.dlib {
            let mut faces = 0;
            let s = median_s(options.runs, || {
                faces = d.mtcnn.detect(&img)?.len();
                Ok(())
            })?;
            mtcnn.insert(size.clone(), s * 1000.0);
            line += &format!(" MTCNN {:.1} ms ({faces} faces)", s * 1000.0);
        }
        if let Some(a) = &nets.arcface {
            let mut faces = 0;
            let s = median_s(options.runs, || {
                faces = a.scrfd.detect(&img)?.len();
                Ok(())
            })?;
            scrfd.insert(size.clone(), s * 1000.0);
            line += &format!(" SCRFD {:.1} ms ({faces} faces)", s * 1000.0);
        }
        part.lines.push(line);
    }
    if nets.dlib.is_some() {
        part.detection_ms.insert("mtcnn", mtcnn);
    }
    if nets.arcface.is_some() {
        part.detection_ms.insert("scrfd", scrfd);
    }
    Ok(part)
}
