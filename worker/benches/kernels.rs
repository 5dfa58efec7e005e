//! `cargo bench -p worker --bench kernels`: the CPU convolution kernels on the layer
//! shapes of dlib's ResNet and MTCNN, one thread (`RAYON_NUM_THREADS=1` is what one of
//! two worker processes on two cores gets): ms per call and GMAC/s, direct against
//! Winograd for the 3×3 layers, and the pools. For tuning the block choice and the
//! Winograd threshold in `engine/nhwc`.

use std::time::Instant;

use worker::engine::nhwc::direct::DirectConv;
use worker::engine::nhwc::winograd::Winograd;
use worker::engine::nhwc::{Act, Maps, buffers, max_pool_ceil};

/// Fastest of 15 calls, in ms (minimum: the machine's noise only adds).
fn best_ms(mut f: impl FnMut() -> Maps) -> f64 {
    (0..15)
        .map(|_| {
            let start = Instant::now();
            let y = f();
            let ms = start.elapsed().as_secs_f64() * 1e3;
            buffers::recycle(y.data);
            ms
        })
        .fold(f64::MAX, f64::min)
}

fn maps(n: usize, h: usize, w: usize, c: usize) -> Maps {
    let data = (0..n * h * w * c)
        .map(|i| ((i * 7919) % 97) as f32 * 0.01 - 0.4)
        .collect();
    Maps { n, h, w, c, data }
}

fn main() {
    // name, batch, input h, w, channels in, out, kernel, stride, padding
    let layers = [
        ("dlib stem 7x7/2", 31, 150, 150, 3, 32, 7, 2, 0),
        ("dlib 35x35x32", 31, 35, 35, 32, 32, 3, 1, 1),
        ("dlib 17x17x64", 31, 17, 17, 64, 64, 3, 1, 1),
        ("dlib 8x8x128", 31, 8, 8, 128, 128, 3, 1, 1),
        ("dlib 3x3x256", 31, 3, 3, 256, 256, 3, 1, 1),
        ("P-Net conv1", 1, 200, 1200, 3, 10, 3, 1, 0),
        ("P-Net conv2", 1, 100, 600, 10, 16, 3, 1, 0),
        ("P-Net conv3", 1, 100, 600, 16, 32, 3, 1, 0),
        ("R-Net conv1", 256, 24, 24, 3, 28, 3, 1, 0),
        ("R-Net conv2", 256, 11, 11, 28, 48, 3, 1, 0),
        ("O-Net conv1", 256, 48, 48, 3, 32, 3, 1, 0),
        ("O-Net conv2", 256, 23, 23, 32, 64, 3, 1, 0),
        ("O-Net conv3", 256, 10, 10, 64, 64, 3, 1, 0),
    ];
    let mut report = Vec::new();
    for (name, n, h, w, c_in, c_out, k, s, p) in layers {
        let x = maps(n, h, w, c_in);
        let weight: Vec<f32> = (0..c_out * c_in * k * k)
            .map(|i| ((i * 31) % 13) as f32 * 0.01 - 0.06)
            .collect();
        let bias = vec![0.1; c_out];
        let shape = [c_out, c_in, k, k];
        let direct = DirectConv::from_oihw(&weight, &bias, shape, s, p);
        let (oh, ow) = direct.output_size(h, w);
        let macs = (n * oh * ow * c_out * c_in * k * k) as f64;
        let ms = best_ms(|| direct.forward_act(&x, Act::Relu));
        let winograd = (k == 3 && s == 1)
            .then(|| Winograd::from_oihw(&weight, &bias, shape, p))
            .flatten()
            .map(|wg| best_ms(|| wg.forward_act(&x, Act::Relu)));
        report.push(serde_json::json!({
            "layer": name,
            "direct_ms": ms,
            "direct_gmac_per_s": macs / ms / 1e6,
            "winograd_ms": winograd,
        }));
    }
    for (name, n, h, w, c, k, s) in [
        ("P-Net pool 2/2", 1, 198, 1198, 10, 2, 2),
        ("R-Net pool 3/2", 256, 22, 22, 28, 3, 2),
        ("O-Net pool 3/2", 256, 46, 46, 32, 3, 2),
    ] {
        let x = maps(n, h, w, c);
        let ms = best_ms(|| max_pool_ceil(&x, k, s));
        report.push(serde_json::json!({ "pool": name, "ms": ms }));
    }
    let report = serde_json::json!({
        "threads": rayon::current_num_threads(),
        "kernels": report,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
