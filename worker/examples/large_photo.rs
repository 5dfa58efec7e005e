//! Writes a large classroom-like photo for the memory benchmark (`scripts/bench_memory.sh`):
//! a fixture group photo upscaled to `WIDTH × HEIGHT`, as JPEG or PNG by the file name.
//!
//! `cargo run --release -p worker --example large_photo -- OUT.(jpg|png) [WIDTH HEIGHT]`
//! (default 12000 × 8300, just under the 100 MP accepted).

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: large_photo OUT.(jpg|png) [WIDTH HEIGHT]"))?,
    );
    let width: u32 = args.next().map_or(Ok(12_000), |a| a.parse())?;
    let height: u32 = args.next().map_or(Ok(8_300), |a| a.parse())?;
    let group = image::open(worker::fixtures::photo("groups/six_people.jpg"))?.to_rgb8();
    let big = image::imageops::resize(&group, width, height, image::imageops::FilterType::Triangle);
    big.save(&out)?;
    eprintln!("wrote {} ({width}×{height})", out.display());
    Ok(())
}
