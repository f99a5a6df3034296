//! Stages with run-time parameters, without a GPU: the value a stage is
//! made with reaches its CPU reference (and so verification), for a scalar
//! (`scale: f32`) and a `&T` of a derived struct element (`gain: &Gain`).
//! The expected outputs are computed here from the definitions.
use kernel_math::{Gain, Stereo, hash32};
use pc_pipeline::builtin::{d2h, h2d};
use pc_pipeline::reference::{expected_chunk, verify};
use pc_pipeline::{PipelineSpec, Stage, Workload};
use ptx_kernels::{ScaleU8Kernel, ScaleU8KernelParams, StereoGainKernel, StereoGainKernelParams};

fn bytes<T: kernel_math::Element>(v: &[T]) -> Vec<u8> {
    // SAFETY: an Element has no padding: every byte is initialized.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }.to_vec()
}

fn scale_stage(scale: f32) -> Stage {
    Stage::map_with::<ScaleU8Kernel>("scale", ptx_kernels::PTX, ScaleU8KernelParams { scale }, |p, input, output| {
        output.iter_mut().zip(input).for_each(|(o, &x)| *o = kernel_math::scale_u8(x, p.scale))
    })
}

/// Every chunk's reference output against `want`, bit for bit, and
/// verification of `want` as the pipeline's output.
fn check(spec: &PipelineSpec, input: &[u8], want: &[f32]) {
    for c in 0..spec.chunks() {
        let got = expected_chunk(spec, c, Some(input)).unwrap();
        let got = got.view::<f32>().unwrap();
        let r = spec.chunk_range(c);
        let want = &want[r.start as usize..r.end as usize];
        assert_eq!(got.len(), want.len());
        if let Some(i) = (0..want.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
            panic!("chunk {c} element {i}: {} want {}", got[i], want[i]);
        }
    }
    let v = verify(spec, Some(input), Some(&bytes(want)), &[]);
    assert!(v.passed(), "{}", v.summary());
}

#[test]
fn a_scalar_parameter_reaches_the_reference() {
    let x: Vec<u8> = (0..10_007u32).map(|i| hash32(i ^ 0x5eed) as u8).collect();
    for scale in [0.5f32, -3.25, 1.0 / 255.0] {
        let spec = PipelineSpec::new(Workload::Stream).stages(vec![h2d(), scale_stage(scale), d2h()]).chunk_elements(1000).total_elements(x.len() as u64);
        let want: Vec<f32> = x.iter().map(|&b| b as f32 * scale).collect();
        check(&spec, &x, &want);
    }
    // Another value, another output: what verification compares with is the stage's own value.
    let spec = PipelineSpec::new(Workload::Stream).stages(vec![h2d(), scale_stage(2.0), d2h()]).chunk_elements(1000).total_elements(x.len() as u64);
    let wrong: Vec<f32> = x.iter().map(|&b| b as f32 * 3.0).collect();
    assert!(!verify(&spec, Some(&x), Some(&bytes(&wrong)), &[]).passed());
}

#[test]
fn a_struct_parameter_reaches_the_reference() {
    let n = 4099u32;
    let x: Vec<Stereo> = (0..n).map(|i| Stereo { left: hash32(i) as i16, right: hash32(i ^ 77) as i16 }).collect();
    let gain = Gain { left: 0.25, right: -1.5 };
    let stage = Stage::map_with::<StereoGainKernel>("gain", ptx_kernels::PTX, StereoGainKernelParams { gain }, |p, input, output| {
        output.iter_mut().zip(input).for_each(|(o, &s)| *o = kernel_math::stereo_gain(s, p.gain))
    });
    assert!(stage.about().contains("stereo_gain_kernel"), "{}", stage.about());
    let spec = PipelineSpec::new(Workload::Stream).stages(vec![h2d(), stage, d2h()]).chunk_elements(1000).total_elements(n as u64);
    let want: Vec<f32> = x.iter().map(|s| s.left as f32 * 0.25 + s.right as f32 * -1.5).collect();
    check(&spec, &bytes(&x), &want);
}
