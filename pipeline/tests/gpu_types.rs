//! Element types other than f32 through rings, sources and sinks, and stages
//! that change the type, on a GPU. Each output is checked twice: by the
//! pipeline's verification (the stages' references) and here, element by
//! element, against values computed in this file from the definitions.
use kernel_math::{Element, Stereo, hash32};
use pc_pipeline::{HostInput, Launch, Pipeline, PipelineSpec, StageRegistry, Workload};
use pc_runtime::gpu::Gpu;

mod common;
use common::seed;

/// Runs `list` over `input` for K = 1..3, both launch modes, chunks that do
/// not divide the total; the host output must equal `want` bit for bit.
fn check<I: Element, O: Element + PartialEq + std::fmt::Debug>(gpu: &Gpu, list: &str, input: &[I], want: &[O]) {
    let reg = StageRegistry::builtin();
    for k in 1..=3 {
        for launch in [Launch::Streams, Launch::Graph] {
            let label = format!("{list} K={k} {launch:?} n={}", input.len());
            let spec = PipelineSpec::new(Workload::Stream).stages(reg.parse(list).unwrap()).slots(k).chunk_elements(4099).total_elements(input.len() as u64);
            let mut p = Pipeline::new(&[gpu], spec, HostInput::from_slice(input)).unwrap_or_else(|e| panic!("{label}: {e}"));
            let r = p.run(launch, 2, false).unwrap_or_else(|e| panic!("{label}: {e}"));
            let v = p.verify(&r);
            assert!(v.passed(), "{label}: {}", v.summary());
            let got = p.output::<O>().unwrap_or_else(|| panic!("{label}: no output of that type"));
            assert_eq!(got.len(), want.len(), "{label}");
            if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
                panic!("{label}: element {i} = {:?}, want {:?}", got[i], want[i]);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn non_f32_elements_and_type_changing_stages() {
    let gpu = Gpu::open(0).unwrap();
    let s = seed();
    let n = 50_003usize;
    let h = |i: usize, salt: u32| hash32(i as u32 ^ hash32(s ^ salt));

    let bytes: Vec<u8> = (0..n).map(|i| h(i, 1) as u8).collect();
    let want: Vec<f32> = bytes.iter().map(|&b| 2.0 * (b as f32 / 255.0)).collect();
    check(&gpu, "h2d,u8-to-f32,consumer,d2h", &bytes, &want);

    let stereo: Vec<Stereo> = (0..n).map(|i| Stereo { left: h(i, 2) as i16, right: h(i, 3) as i16 }).collect();
    let want: Vec<f32> = stereo.iter().map(|x| (x.left as f32 + x.right as f32) / 2.0).collect();
    check(&gpu, "h2d,stereo-to-mono,d2h", &stereo, &want);

    let words: Vec<u32> = (0..n).map(|i| h(i, 4)).collect();
    let want: Vec<u32> = words.iter().map(|&x| hash32(hash32(x))).collect();
    check(&gpu, "h2d,mix-u32,mix-u32,d2h", &words, &want);

    let ints: Vec<i32> = (0..n).map(|i| h(i, 5) as i32).chain([i32::MIN, -1, 0]).collect();
    let want: Vec<i32> = ints.iter().map(|&x| if x == i32::MIN { x } else { x.abs() }).collect();
    check(&gpu, "h2d,abs-i32,d2h", &ints, &want);

    let doubles: Vec<f64> = (0..n).map(|i| f64::from_bits(((h(i, 6) as u64) << 32 | h(i, 7) as u64) & !(0x7ff << 52) | (0x3ff << 52))).collect();
    let want: Vec<f64> = doubles.iter().map(|x| x * 2.0).collect();
    check(&gpu, "h2d,double-f64,d2h", &doubles, &want);

    // Copies only, of u8 (no kernel): a ring of bytes whose chunks are not
    // multiples of 4 bytes.
    check(&gpu, "h2d,u8-to-f32,d2h", &bytes[..4097], &bytes[..4097].iter().map(|&b| b as f32 / 255.0).collect::<Vec<f32>>());
}

#[test]
#[ignore = "needs a CUDA device"]
fn generated_input_of_other_types_verifies() {
    let gpu = Gpu::open(0).unwrap();
    let reg = StageRegistry::builtin();
    for list in ["h2d,u8-to-f32,moving-average,d2h", "h2d,mix-u32,d2h", "h2d,double-f64,d2h", "h2d,stereo-to-mono,consumer,d2h"] {
        let spec =
            PipelineSpec::new(Workload::Stream).stages(reg.parse(list).unwrap()).slots(2).chunk_elements(1 << 16).total_elements((1 << 20) + 7).seed(seed());
        let mut p = Pipeline::new(&[&gpu], spec, HostInput::Generated).unwrap();
        let r = p.run(Launch::Streams, 1, false).unwrap();
        let v = p.verify(&r);
        assert!(v.passed(), "{list}: {}", v.summary());
    }
}

/// Runs h2d -> `stage` -> d2h over `input` (K = 2, chunks that do not divide
/// the total): the verification and the host output.
fn run_stage<I: Element, O: Element>(gpu: &Gpu, stage: pc_pipeline::Stage, input: &[I]) -> (pc_pipeline::reference::Verification, Vec<O>) {
    use pc_pipeline::builtin::{d2h, h2d};
    let spec = PipelineSpec::new(Workload::Stream).stages(vec![h2d(), stage, d2h()]).slots(2).chunk_elements(4099).total_elements(input.len() as u64);
    let mut p = Pipeline::new(&[gpu], spec, HostInput::from_slice(input)).unwrap();
    let r = p.run(Launch::Streams, 1, false).unwrap();
    (p.verify(&r), p.output::<O>().unwrap().to_vec())
}

#[test]
#[ignore = "needs a CUDA device"]
fn run_time_parameters_reach_the_kernel() {
    use kernel_math::Gain;
    use pc_pipeline::Stage;
    use ptx_kernels::{ScaleU8Kernel, ScaleU8KernelParams, StereoGainKernel, StereoGainKernelParams};
    let gpu = Gpu::open(0).unwrap();
    let s = seed();
    let n = 50_003usize;
    let h = |i: usize, salt: u32| hash32(i as u32 ^ hash32(s ^ salt));
    let bytes: Vec<u8> = (0..n).map(|i| h(i, 11) as u8).collect();
    // A scale from the seed: the kernel cannot have it built in.
    let scale = (h(0, 12) % 10_000) as f32 / 64.0 - 70.0;
    let scaled = |reference_scale: Option<f32>| {
        Stage::map_with::<ScaleU8Kernel>("scale", ptx_kernels::PTX, ScaleU8KernelParams { scale }, move |p, i, o| {
            let k = reference_scale.unwrap_or(p.scale);
            o.iter_mut().zip(i).for_each(|(o, &x)| *o = kernel_math::scale_u8(x, k))
        })
    };
    let (v, got) = run_stage::<u8, f32>(&gpu, scaled(None), &bytes);
    assert!(v.passed(), "scale {scale}: {}", v.summary());
    if let Some(i) = (0..n).find(|&i| got[i].to_bits() != (bytes[i] as f32 * scale).to_bits()) {
        panic!("scale {scale}: element {i} = {}, want {}", got[i], bytes[i] as f32 * scale);
    }
    // A reference that disagrees with the kernel's value fails verification.
    let (v, _) = run_stage::<u8, f32>(&gpu, scaled(Some(scale + 1.0)), &bytes);
    assert!(!v.passed(), "a reference with another scale must fail: {}", v.summary());

    let stereo: Vec<Stereo> = (0..n).map(|i| Stereo { left: h(i, 13) as i16, right: h(i, 14) as i16 }).collect();
    let gain = Gain { left: (h(1, 15) % 1000) as f32 / 256.0, right: -((h(2, 16) % 1000) as f32) / 128.0 };
    let stage = Stage::map_with::<StereoGainKernel>("gain", ptx_kernels::PTX, StereoGainKernelParams { gain }, |p, i, o| {
        o.iter_mut().zip(i).for_each(|(o, &x)| *o = kernel_math::stereo_gain(x, p.gain))
    });
    let (v, got) = run_stage::<Stereo, f32>(&gpu, stage, &stereo);
    assert!(v.passed(), "gain {gain:?}: {}", v.summary());
    let want = |x: &Stereo| x.left as f32 * gain.left + x.right as f32 * gain.right;
    if let Some(i) = (0..n).find(|&i| got[i].to_bits() != want(&stereo[i]).to_bits()) {
        panic!("gain {gain:?}: element {i} = {}, want {}", got[i], want(&stereo[i]));
    }
}
