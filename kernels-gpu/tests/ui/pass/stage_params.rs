//! Parameters after `output` make a stage with run-time values: scalars,
//! `&T` and `&[T]` become the fields of `<Launcher>Params`; `spin: u64` is
//! passed 0 and is none of them. A derived struct element is an Element.
use nvptx_std::host::{HaloKernel, KernelParams, MapKernel, ParamBuf};
use nvptx_std::{Element, Out, kernel};
nvptx_std::kernel_crate!();

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Element)]
pub struct Gain {
    pub mul: f32,
    pub add: f32,
}

#[kernel(same_len(input, output))]
pub fn scale_kernel(input: &[u8], mut output: Out<f32>, scale: f32, spin: u64) {
    nvptx_std::spin_ns(spin);
    for (i, o) in output.iter_mut() {
        *o = input[i] as f32 * scale;
    }
}

#[kernel(same_len(input, output))]
pub fn gain_kernel(input: &[Gain], mut output: Out<f32>, gain: &Gain, table: &[f32]) {
    for (i, o) in output.iter_mut() {
        *o = input[i].mul * gain.mul + gain.add + table[0];
    }
}

#[kernel(same_len(input, output))]
pub fn smooth_kernel(history: &[f32], input: &[f32], mut output: Out<f32>, weight: f32) {
    for (i, o) in output.iter_mut() {
        *o = input[i] * weight + if i == 0 { history.last().copied().unwrap_or(0.0) } else { input[i - 1] };
    }
}

fn map_params<K: MapKernel<Params = P>, P: KernelParams>(p: P) -> P {
    p
}
fn halo_params<K: HaloKernel<Params = P>, P: KernelParams>(p: P) -> P {
    p
}

fn main() {
    let s = map_params::<ScaleKernel, _>(ScaleKernelParams { scale: 2.5 });
    assert_eq!(s.clone().scale, 2.5);
    let g = map_params::<GainKernel, _>(GainKernelParams { gain: Gain { mul: 2.0, add: 1.0 }, table: vec![0.5] });
    let _: &dyn Fn(&GainKernelParams) -> GainKernelParams = &|p| p.clone();
    let _: Option<<GainKernelParams as KernelParams>::OnDevice> = None::<(ParamBuf<Gain>, ParamBuf<f32>)>;
    assert_eq!(format!("{g:?}"), "GainKernelParams { gain: Gain { mul: 2.0, add: 1.0 }, table: [0.5] }");
    let _ = halo_params::<SmoothKernel, _>(SmoothKernelParams { weight: 0.5 });
}
