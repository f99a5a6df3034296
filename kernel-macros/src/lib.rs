//! `#[kernel]`: a GPU kernel's signature written once.
//!
//! ```ignore
//! use nvptx_std::{kernel, Out};
//!
//! #[kernel(same_len(input, output))]
//! pub fn scale_kernel(input: &[f32], mut output: Out<f32>, factor: f32) {
//!     for (i, o) in output.iter_mut() {
//!         *o = input[i] * factor;
//!     }
//! }
//! ```
//!
//! From that one function the macro emits:
//! - on `nvptx64` (the PTX build): `#[no_mangle] extern "ptx-kernel" fn
//!   scale_kernel(..)`, whose PTX `.entry` has the function's name. Each slice
//!   arrives as (address, length) and is rebuilt before the body runs, so the
//!   body is safe Rust over slices that know their length;
//! - on `nvptx64` too, `static scale_kernel__layout` (unmangled, kept in
//!   the PTX as a `.global`): a digest of the signature as the device build
//!   saw it (each parameter's name, kind and type as written; `same_len`,
//!   `pdl`, `faults`), and the size and alignment on the device of each
//!   parameter's element type (`T` of `&[T]`, `Out<T>`, `RingSlots<T>` or
//!   `&T`; a scalar's own type);
//! - elsewhere (the host build of the same crate): a unit struct
//!   `ScaleKernel` with `NAME`, the PTX parameter sizes, the same digest
//!   (`SIGNATURE`) and layouts as the host build computes them
//!   (`PARAM_LAYOUT`), and
//!   `unsafe fn launch(kernel, stream, cfg, input, output, factor)` whose
//!   parameters are typed from the kernel's: `&[T]` takes any device slice of
//!   `T` (`&impl DevicePtr<T>`), `Out<T>`/`OutQuads<T>`/`OutGroups<T, R>` a mutable one
//!   (`&mut impl DevicePtrMut<T>`), `&T` a device slice whose element 0 is
//!   passed, a scalar its own type. A wrong element type or argument count
//!   does not compile; lengths, launch shape and device are checked before
//!   the launch. The body is compiled on the host too (never called), so
//!   it is type-checked by ordinary host builds and lints. A kernel
//!   parameter may have any name, `kernel`, `stream` and `cfg` included: the
//!   launcher then names its own parameter `kernel_` (and so on).
//!
//! Loading a kernel (`Module::kernel`) compares the PTX entry's parameter
//! sizes and its layout record with the host's: a signature that `#[cfg]`
//! or `cfg_attr` makes differ between the two builds (a `u64` read as
//! `&u64`, `same_len` on one side only), or an element type whose size or
//! alignment depends on the target (a `cfg!(target_arch = ..)` length,
//! say), is refused there, instead of the host launching the kernel with
//! its own idea of what the device does with the arguments.
//!
//! Parameters are recognised by their form: `&[T]` (read-only slice), `&T`
//! (one shared value, e.g. atomics), a type named `Out`, `OutQuads`,
//! `OutGroups` or `OutTiles` (written slice, each thread writing only the
//! indices it owns), `RingSlots` (a ring of the flags grain, below),
//! anything else a scalar (`nvptx_std::Scalar`). `&mut` and raw pointers are
//! refused: every thread of the grid would get the same `&mut`.
//!
//! `RingSlots<T>` is shared with another kernel running at the same time,
//! through `nvptx_std::ring`'s protocol, so it is accepted only in the flag
//! shapes: `plan: &RingPlan, ctl: &RingControl`, then the rings, each
//! followed by its flags (a source: `output: RingSlots<T>, out_flags:
//! &RingFlags`; a map: `input`, `in_flags`, `output`, `out_flags`; a sink:
//! `input`, `in_flags`), then any other parameters but rings. Anything else
//! with a `RingSlots` is a compile error. Such a kernel is never a
//! `MapKernel` or `HaloKernel`; its body reaches the ring only through the
//! stage runners, which need the `unsafe` `nvptx_std::ring::StageCtx::new`
//! (its contract: launched only as a stage of the flags grain).
//!
//! A kernel of the map shape `(input: &[I], output: Out<O>, ..)` also
//! implements `MapKernel`, and one of the halo shape `(history: &[I], input:
//! &[I], output: Out<O>, ..)` (the first parameter named `history`, both
//! slices of one type) `HaloKernel`: a pipeline runs either as a stage.
//! Parameters after `output` (scalars, `&T`, `&[T]`) are the stage's
//! run-time values: the macro generates `<Launcher>Params`, one public field
//! each (`&T` as `T`, `&[T]` as `Vec<T>`), which the stage owns and passes
//! at every launch; a `spin: u64` there is passed 0. Both impls are bounded
//! by their element types being `Element`s, so a kernel over atomics
//! (`&[AtomicU32]` in) compiles but is no stage. A kernel of the flag-map
//! shape (`nvptx_std::host::FlagMapKernel` says which) implements that: a
//! pipeline runs it as a map stage of the flags grain. A `#[kernel(pdl)]`
//! of the map shape also implements `PdlMapKernel` (the stage's form in the
//! PDL grains); one of the warp-ring map shape (`WarpMapKernel` says which)
//! implements that (its form in the warps grain). A kernel that writes
//! `OutTiles` (a warp-ring kernel) is never a `MapKernel` or `HaloKernel`:
//! its launch needs the ring's shared memory and watchdog record.
//!
//! `#[derive(Element)]` makes a `#[repr(C)]` struct an `Element`, checking
//! its layout, fields and padding at compile time (see [`macro@Element`]).
//!
//! `#[kernel(same_len(a, b, ..))]` makes the launcher refuse slices of
//! different lengths.
//!
//! `#[kernel(pdl)]` (sm_90 kernel crates: it uses `nvptx_std::hopper`) puts
//! `griddepcontrol.wait` at the top of the entry, before the body can touch
//! memory, implements `nvptx_std::host::PdlKernel` for the launcher, and adds
//! `launch_pdl` (the same arguments, launched with the programmatic stream
//! serialization attribute). Only `PdlKernel`s may be launched that way, so
//! a kernel that starts early without waiting cannot be written by accident.
//! `#[kernel(pdl, faults = f)]` names a `f: u32` parameter that the sync
//! checker uses to skip the wait (`nvptx_std::hopper::pdl::fault`): `launch`
//! and `launch_pdl` then take no `f` and pass 0; only the extra
//! `launch_with_faults`, whose contract says it races, takes it.
//!
//! A kernel crate says `nvptx_std::kernel_crate!();` once, at its root: the
//! marker type it defines (`KernelCrate`) ties each launcher to PTX built
//! from this crate (`nvptx_std::host::Ptx<KernelCrate>`), so no launcher
//! loads from another module.
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Token, Type};

/// See the crate docs.
#[proc_macro_attribute]
pub fn kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = syn::parse_macro_input!(item as ItemFn);
    match syn::parse::<KernelAttr>(attr).and_then(|attr| expand(attr, func.clone())) {
        Ok(t) => t.into(),
        // The function stays, as written, beside the error: without it the
        // crate would also get errors and warnings about a function and
        // imports that vanished (`unused import: Out`), burying the real one.
        Err(e) => {
            let e = e.to_compile_error();
            quote! { #e #[allow(dead_code)] #func }.into()
        }
    }
}

#[derive(Default)]
struct KernelAttr {
    same_len: Vec<Ident>,
    /// `pdl`: the entry executes `griddepcontrol.wait` before the body.
    pdl: Option<Span>,
    /// `faults = name`: the `u32` parameter that holds the sync checker's
    /// fault bits (`nvptx_std::hopper::pdl::fault`).
    faults: Option<Ident>,
}

const OPTIONS: &str = "expected `same_len(a, b, ..)`, `pdl` or `faults = name`";

impl Parse for KernelAttr {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut attr = KernelAttr::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            if key == "pdl" {
                attr.pdl = Some(key.span());
            } else if key == "faults" {
                input.parse::<Token![=]>()?;
                attr.faults = Some(input.parse()?);
            } else if key == "same_len" {
                let inner;
                syn::parenthesized!(inner in input);
                let names: Punctuated<Ident, Token![,]> = inner.parse_terminated(Ident::parse, Token![,])?;
                attr.same_len.extend(names);
            } else {
                return Err(syn::Error::new(key.span(), format!("unknown #[kernel] option; {OPTIONS}")));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(attr)
    }
}

// `Out` holds two `syn::Type`s: a few of these per kernel, at compile time.
#[allow(clippy::large_enum_variant)]
enum Kind {
    /// `&[T]`
    Slice(Type),
    /// `&T`
    Shared(Type),
    /// `Out<T>` / `OutQuads<T>` / `OutGroups<T, R>` / `OutTiles<T>`: the whole type and `T`.
    Out(Type, Type),
    /// `RingSlots<T>` (the flags grain, `nvptx_std::ring`): the whole type
    /// and `T`. Only in the flag shapes (`check_flag_shape`), and never a
    /// `MapKernel` or `HaloKernel`: the ring is not an output the kernel
    /// owns, the stage runners' protocol shares it with another kernel.
    Ring(Type, Type),
    /// By value.
    Scalar(Type),
}

struct Param {
    name: Ident,
    kind: Kind,
    /// The parameter as written (`name: Type`): host-side errors point here.
    span: Span,
}

fn classify(ty: &Type) -> syn::Result<Kind> {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => Err(syn::Error::new(
            ty.span(),
            "a kernel cannot take `&mut`: every thread of the grid would hold the same `&mut`; take `Out<T>` (each thread writes only the indices it owns)",
        )),
        Type::Reference(r) => match &*r.elem {
            Type::Slice(s) => Ok(Kind::Slice((*s.elem).clone())),
            Type::ImplTrait(_) => Err(generic_param(ty)),
            Type::TraitObject(_) => Err(unsized_shared(ty)),
            Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => Err(unsized_shared(ty)),
            elem => Ok(Kind::Shared(elem.clone())),
        },
        Type::ImplTrait(_) => Err(generic_param(ty)),
        Type::Ptr(_) => Err(syn::Error::new(ty.span(), "raw pointers are not kernel parameters: take `&[T]` to read a slice, `Out<T>` to write one")),
        Type::Path(p) => {
            let last = p.path.segments.last().ok_or_else(|| syn::Error::new(ty.span(), "empty type path"))?;
            let ring = last.ident == "RingSlots";
            if ring || last.ident == "Out" || last.ident == "OutQuads" || last.ident == "OutGroups" || last.ident == "OutTiles" {
                let needs = || syn::Error::new(ty.span(), format!("`{0}` needs its element type: `{0}<T>`", last.ident));
                let PathArguments::AngleBracketed(args) = &last.arguments else { return Err(needs()) };
                let elem = args.args.iter().find_map(|a| match a {
                    GenericArgument::Type(t) => Some(t.clone()),
                    _ => None,
                });
                let elem = elem.ok_or_else(needs)?;
                Ok(if ring { Kind::Ring(ty.clone(), elem) } else { Kind::Out(ty.clone(), elem) })
            } else {
                Ok(Kind::Scalar(ty.clone()))
            }
        }
        _ => Ok(Kind::Scalar(ty.clone())),
    }
}

/// The flag shapes, the only kernels that may take `RingSlots` (a stage of
/// the flags grain, `nvptx_std::ring`): `plan: &RingPlan, ctl: &RingControl`,
/// then the rings, each `RingSlots` followed by its flags (a source:
/// `output`, `out_flags`; a map: `input`, `in_flags`, `output`,
/// `out_flags`; a sink: `input`, `in_flags`), then any parameters but rings.
fn check_flag_shape(params: &[Param]) -> syn::Result<()> {
    let Some(first_ring) = params.iter().find(|p| matches!(p.kind, Kind::Ring(..))) else { return Ok(()) };
    let shared_named = |p: &Param, name: &str, ty: &str| {
        p.name == name && matches!(&p.kind, Kind::Shared(Type::Path(t)) if t.path.segments.last().is_some_and(|s| s.ident == ty))
    };
    let ring_named = |p: &Param, name: &str| p.name == name && matches!(p.kind, Kind::Ring(..));
    let rings_at = |names: &[&str]| {
        names.len() + 2 <= params.len()
            && shared_named(&params[0], "plan", "RingPlan")
            && shared_named(&params[1], "ctl", "RingControl")
            && names.chunks(2).zip(params[2..].chunks(2)).all(|(n, p)| ring_named(&p[0], n[0]) && shared_named(&p[1], n[1], "RingFlags"))
            && !params[2 + names.len()..].iter().any(|p| matches!(p.kind, Kind::Ring(..)))
    };
    let shapes: [&[&str]; 3] = [&["output", "out_flags"], &["input", "in_flags", "output", "out_flags"], &["input", "in_flags"]];
    if shapes.iter().any(|names| rings_at(names)) {
        return Ok(());
    }
    Err(syn::Error::new(
        first_ring.span,
        "`RingSlots` is a ring of the flags grain (`nvptx_std::ring`), shared with a kernel running at the same time: \
         only a kernel of a flag shape may take it: `plan: &RingPlan, ctl: &RingControl`, then `output: RingSlots<T>, \
         out_flags: &RingFlags` (a source), `input: RingSlots<I>, in_flags: &RingFlags, output: RingSlots<O>, out_flags: \
         &RingFlags` (a map) or `input: RingSlots<I>, in_flags: &RingFlags` (a sink), then other parameters, no more rings; \
         for an output the kernel owns, take `Out<T>`",
    ))
}

fn generic_param(ty: &Type) -> syn::Error {
    syn::Error::new(ty.span(), "a #[kernel] fn cannot be generic: a PTX entry has one signature; name the type instead of `impl Trait`")
}

fn unsized_shared(ty: &Type) -> syn::Error {
    syn::Error::new(ty.span(), "a `&T` parameter is one `T` (element 0 of a device buffer), so `T` must be sized: take `&[T]` for many")
}

/// FNV-1a (64 bits) of a canonical text of the kernel's signature: see
/// `KernelEntry::SIGNATURE`. The same source gives the same digest on
/// both sides; `cfg` that changes a parameter's name, kind or type tokens,
/// or the `same_len`, `pdl` or `faults` options, changes it.
fn signature_digest(name: &str, params: &[Param], attr: &KernelAttr) -> u64 {
    let mut text = format!("{name}(");
    for Param { name, kind, .. } in params {
        let (tag, ty) = match kind {
            Kind::Slice(t) => ("slice", quote!(#t)),
            Kind::Shared(t) => ("shared", quote!(#t)),
            Kind::Out(full, _) => ("out", quote!(#full)),
            Kind::Ring(full, _) => ("ring", quote!(#full)),
            Kind::Scalar(t) => ("scalar", quote!(#t)),
        };
        text += &format!("{name}: {tag} {ty}; ");
    }
    let same_len: Vec<String> = attr.same_len.iter().map(Ident::to_string).collect();
    text += &format!(") same_len({}) pdl {} faults {:?}", same_len.join(","), attr.pdl.is_some(), attr.faults.as_ref().map(Ident::to_string));
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            let mut c = p.chars();
            c.next().into_iter().flat_map(char::to_uppercase).chain(c)
        })
        .collect()
}

fn expand(attr: KernelAttr, func: ItemFn) -> syn::Result<Tokens> {
    let sig = &func.sig;
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new(u.span(), "a #[kernel] fn is safe Rust: its slices carry their lengths; drop `unsafe`"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(sig.generics.span(), "a #[kernel] fn cannot be generic: a PTX entry has one signature"));
    }
    if let ReturnType::Type(_, t) = &sig.output {
        return Err(syn::Error::new(t.span(), "a #[kernel] fn returns nothing; write results through `Out<T>` or atomics"));
    }
    if sig.asyncness.is_some() || sig.constness.is_some() || sig.abi.is_some() || sig.variadic.is_some() {
        return Err(syn::Error::new(sig.span(), "a #[kernel] fn is a plain `fn`"));
    }
    let mut params = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new(arg.span(), "a #[kernel] fn takes no `self`"));
        };
        let name = match &*pt.pat {
            Pat::Ident(i) => i.ident.clone(),
            other => return Err(syn::Error::new(other.span(), "kernel parameters must be plain names")),
        };
        params.push(Param { name, kind: classify(&pt.ty)?, span: pt.span() });
    }
    check_flag_shape(&params)?;
    for n in &attr.same_len {
        match params.iter().find(|p| &p.name == n) {
            Some(Param { kind: Kind::Slice(_) | Kind::Out(..), .. }) => {}
            Some(_) => {
                return Err(syn::Error::new(
                    n.span(),
                    format!("same_len compares slice lengths: `{n}` is not a slice (`&[T]`, `Out<T>`, `OutQuads<T>` or `OutGroups<T, R>`)"),
                ));
            }
            None => {
                let names: Vec<String> = params.iter().map(|p| format!("`{}`", p.name)).collect();
                let has = if names.is_empty() { "no parameters".to_string() } else { names.join(", ") };
                return Err(syn::Error::new(n.span(), format!("same_len names `{n}`, which is not a parameter of this kernel (it has {has})")));
            }
        }
    }

    if let Some(f) = &attr.faults {
        if attr.pdl.is_none() {
            return Err(syn::Error::new(
                f.span(),
                "`faults = ..` names the fault knob of a `#[kernel(pdl)]` kernel (it can skip the wait `pdl` inserts); add `pdl`",
            ));
        }
        match params.iter().find(|p| &p.name == f) {
            Some(Param { kind: Kind::Scalar(t), .. }) if quote!(#t).to_string() == "u32" => {}
            _ => return Err(syn::Error::new(f.span(), format!("`faults = {f}` must name a `{f}: u32` parameter of this kernel"))),
        }
    }
    let vis = &func.vis;
    let name = &sig.ident;
    let name_str = name.to_string();
    let attrs = &func.attrs;
    // The host body gets the kernel's `#[allow]`s: it is linted like the
    // device body, which sits inside the entry that carries them.
    let allows: Vec<_> = attrs.iter().filter(|a| a.path().is_ident("allow")).collect();
    let block = &func.block;
    let user_inputs = &sig.inputs;
    let launcher = Ident::new(&camel(&name_str), name.span());

    // Device side: raw parameters and their conversion to the user's.
    let mut raw = Vec::new();
    let mut convert = Vec::new();
    let mut checks = Vec::new();
    // Host side: `launch` and `launch_pdl` pass 0 for the fault knob
    // (`host_params`, `pushes`); `launch_with_faults` takes it (`*_all`).
    let mut host_params = Vec::new();
    let mut pushes = Vec::new();
    let mut host_params_all = Vec::new();
    let mut pushes_all = Vec::new();
    let mut sizes = Vec::new();
    // Each parameter's element type (`T` of `&[T]`, `Out<T>`, `RingSlots<T>`,
    // `&T`; a scalar's own type): its size and alignment are recorded on
    // both sides and compared when the PTX is loaded.
    let mut layout_names = Vec::new();
    let mut layout_types = Vec::new();
    // Slices under one `same_len` rule share one length on the device: the
    // launcher refuses unequal ones before launching (and a launch that
    // bypasses it breaks the entry's contract). The compiler then sees that
    // `output.iter_mut()`'s indices are in bounds of `input` and drops the
    // bounds check from the loop. (A device-side recheck cost the
    // one-thread-per-element consumer 3%.)
    let shared_len = attr.same_len.first().map(|n| format_ident!("{}__len", n));
    let unused_lens: Vec<Ident> = attr.same_len.iter().skip(1).map(|n| format_ident!("{}__len", n)).collect();
    let len_guard = quote! { #(let _ = #unused_lens;)* };
    let fixed = Fixed::new(&params);
    let Fixed { kernel, stream, cfg, args, .. } = &fixed;
    for Param { name: p, kind, span: param_span } in &params {
        let ps = p.to_string();
        let ptr = format_ident!("{}__ptr", p);
        let raw_len = format_ident!("{}__len", p);
        let len = match &shared_len {
            Some(l) if attr.same_len.contains(p) => l.clone(),
            _ => raw_len.clone(),
        };
        layout_names.push(ps.clone());
        layout_types.push(match kind {
            Kind::Slice(t) | Kind::Shared(t) | Kind::Out(_, t) | Kind::Ring(_, t) | Kind::Scalar(t) => t.clone(),
        });
        match kind {
            Kind::Slice(t) => {
                raw.push(quote! { #ptr: *const #t, #raw_len: usize });
                convert.push(quote! { ::nvptx_std::param::slice(#ptr, #len) });
                checks.push(quote_spanned! { t.span()=> ::nvptx_std::param::assert_slice_element::<#t>(); });
                host_params.push(quote_spanned! {*param_span=> #p: &impl ::nvptx_std::host::DevicePtr<#t> });
                pushes.push(quote! { #args.slice(#p, #ps)?; });
                host_params_all.push(host_params[host_params.len() - 1].clone());
                pushes_all.push(pushes[pushes.len() - 1].clone());
                sizes.extend([quote!(8usize), quote!(8usize)]);
            }
            Kind::Out(full, t) => {
                raw.push(quote! { #ptr: *mut #t, #raw_len: usize });
                convert.push(quote! { <#full as ::nvptx_std::param::OutParam>::from_raw(#ptr, #len) });
                // What the entry's conversion needs (`OutQuads<T>` wants a
                // `Word`), checked on the host too: otherwise a host build
                // accepts the kernel and only the PTX build refuses it.
                checks.push(quote_spanned! { full.span()=> __out_param::<#full>(); });
                host_params.push(quote_spanned! {*param_span=> #p: &mut impl ::nvptx_std::host::DevicePtrMut<#t> });
                pushes.push(quote! { #args.slice_mut(#p, #ps)?; });
                host_params_all.push(host_params[host_params.len() - 1].clone());
                pushes_all.push(pushes[pushes.len() - 1].clone());
                sizes.extend([quote!(8usize), quote!(8usize)]);
            }
            Kind::Ring(full, t) => {
                raw.push(quote! { #ptr: *mut #t, #raw_len: usize });
                convert.push(quote! { <#full as ::nvptx_std::param::RingParam>::from_raw(#ptr, #len) });
                checks.push(quote_spanned! { full.span()=> __ring_param::<#full>(); });
                host_params.push(quote_spanned! {*param_span=> #p: &mut impl ::nvptx_std::host::DevicePtrMut<#t> });
                pushes.push(quote! { #args.slice_mut(#p, #ps)?; });
                host_params_all.push(host_params[host_params.len() - 1].clone());
                pushes_all.push(pushes[pushes.len() - 1].clone());
                sizes.extend([quote!(8usize), quote!(8usize)]);
            }
            Kind::Shared(t) => {
                raw.push(quote! { #ptr: *const #t });
                convert.push(quote! { ::nvptx_std::param::shared(#ptr) });
                checks.push(quote_spanned! { t.span()=> ::nvptx_std::param::assert_shared::<#t>(); });
                host_params.push(quote_spanned! {*param_span=> #p: &impl ::nvptx_std::host::DevicePtr<#t> });
                pushes.push(quote! { #args.shared(#p, #ps)?; });
                host_params_all.push(host_params[host_params.len() - 1].clone());
                pushes_all.push(pushes[pushes.len() - 1].clone());
                sizes.push(quote!(8usize));
            }
            Kind::Scalar(t) => {
                raw.push(quote! { #p: #t });
                convert.push(quote! { #p });
                // The host push below requires `Scalar` itself: checking it
                // there too gave every non-Scalar parameter two errors.
                checks.push(quote_spanned! { t.span()=> #[cfg(target_arch = "nvptx64")] ::nvptx_std::param::assert_scalar::<#t>(); });
                sizes.push(quote!(::core::mem::size_of::<#t>()));
                host_params_all.push(quote_spanned! {*param_span=> #p: #t });
                pushes_all.push(quote_spanned! {t.span()=> #args.scalar::<#t>(#p); });
                if attr.faults.as_ref() == Some(p) {
                    pushes.push(quote! { #args.scalar::<u32>(0u32); });
                } else {
                    host_params.push(quote_spanned! {*param_span=> #p: #t });
                    pushes.push(quote_spanned! {t.span()=> #args.scalar::<#t>(#p); });
                }
            }
        }
    }
    let same_len = if attr.same_len.len() > 1 {
        let names = attr.same_len.iter().map(|n| n.to_string());
        let lens = attr.same_len.iter().map(|n| quote! { ::nvptx_std::host::DeviceSlice::len(#n) });
        quote! { #args.same_len(&[#((#names, #lens)),*])?; }
    } else {
        quote! {}
    };
    let launch_doc = format!(
        "Launches the `{name_str}` kernel on `stream`: the typed host side of its `#[kernel]` signature.\n\n\
         Before launching it checks the block size against the kernel's limit, that the launch is one-dimensional \
         (each thread's share of an `Out` is defined over a 1-D grid), that every buffer lives in the stream's \
         context, and any `same_len` rule; each refusal is an `Err`, nothing is launched.\n\n\
         # Safety\n\
         - Cross-stream ordering is the caller's: cudarc's implicit event tracking is off in this project. \
         Until this kernel completes, no other stream and no host code may write a buffer passed as `&[T]`, \
         or read or write one passed as `Out` or as `&T` (the kernel may write a `&T` through its atomics, \
         though the launcher borrows it shared); no buffer may be freed before this kernel completes \
         (cudarc frees a buffer on its own stream, so order that stream after this one with an event).\n\
         - `kernel` comes from the PTX built from this `#[kernel]` function: loading checks only the entry's \
         name, parameter sizes and element layouts, not what the code does with them.\n\
         - No buffer passed as `Out` overlaps any other buffer of the same launch (cudarc's types cannot, \
         by borrowing; a `DevicePtr` of your own must not hand out overlapping views).\n\
         - Each buffer's `DevicePtr`/`DeviceSlice` (safe traits any type may implement) reports the true \
         address, length and stream of live device memory, as cudarc's `CudaSlice`, `CudaView` and \
         `CudaViewMut` do, and a buffer passed as `&T` holds a valid `T` in element 0 (for `&[T]` and `Out<T>` \
         any bits are valid: `T` is an `Element`).\n\
         - The one exception to the first rule, the flags grain (`nvptx_std::ring`): a buffer passed as \
         `RingSlots<T>`, and a `&T` of atomics (the ring's flags and control records), may be used at the \
         same time by the other kernels of the same flag pipeline, whose accesses the ring's protocol orders; \
         they must have been launched with the same plan, flags and K."
    );
    let struct_doc = format!("Host side of the `{name_str}` kernel (see `#[kernel]`): its PTX entry name and typed launcher.");
    let map_impl = map_kernel_impl(&params, &launcher, vis, &attr);
    let halo_impl = halo_kernel_impl(&params, &launcher, vis, attr.faults.as_ref());
    let flag_map_impl = flag_map_kernel_impl(&params, &launcher);
    let warp_map_impl = warp_map_kernel_impl(&params, &launcher, &attr);
    let body_fn = format_ident!("__{}_body", name);
    // `pdl`: the wait comes before the parameters are even rebuilt, so no
    // line of the body can touch memory the kernel ahead of it still
    // writes or reads.
    let pdl_wait = match (&attr.pdl, &attr.faults) {
        (None, _) => quote! {},
        (Some(_), None) => quote! { ::nvptx_std::hopper::pdl::wait(); },
        (Some(_), Some(f)) => quote! { ::nvptx_std::hopper::pdl::wait_unless_faulted(#f); },
    };
    // Everything of the signature that decides what the entry does with
    // its arguments (each parameter's name, kind and type as written, the
    // `same_len` groups, `pdl`, `faults`), hashed the same way on both
    // sides: a `#[cfg]` or `cfg_attr` that gives the device another
    // signature than the host (a `u64` read as `&u64`, `same_len` on one
    // side only, a read slice written) changes it, and loading refuses
    // the kernel. The layout record below catches what tokens cannot
    // show (a type whose size depends on the target).
    let signature = signature_digest(&name_str, &params, &attr);
    let (signature_lo, signature_hi) = (signature as u32, (signature >> 32) as u32);
    let pdl_host = pdl_launchers(&attr, &launcher, &name_str, &fixed, (&host_params, &pushes), (&host_params_all, &pushes_all), &same_len);
    // Spanned at the kernel's name, so a call with the wrong arguments shows
    // the kernel's own signature ("associated function defined here").
    let launch = Ident::new("launch", name.span());
    let span = Span::call_site();
    let layout_symbol = format_ident!("{}__layout", name);
    let layout_len = 3 + 2 * layout_types.len();
    let layout_count = layout_types.len() as u32;

    Ok(quote_spanned! {span=>
        #[cfg(target_arch = "nvptx64")]
        #(#attrs)*
        #[unsafe(no_mangle)]
        // The raw parameters are `<name>__ptr` / `<name>__len`.
        #[allow(non_snake_case)]
        #vis unsafe extern "ptx-kernel" fn #name(#(#raw),*) {
            #[inline(always)]
            #[allow(unused_mut)]
            fn #body_fn(#user_inputs) #block
            // SAFETY: the launcher generated beside this entry passes every
            // slice as the address and length of one live device buffer that
            // no other work touches while this kernel runs (its contract),
            // over a one-dimensional launch.
            #pdl_wait
            #len_guard
            unsafe { #body_fn(#(#convert),*) }
        }

        // The device's signature digest and layout of each parameter's
        // element type, `[n, digest_lo, digest_hi, size_0, align_0, ..]`: a
        // `.global` of the PTX that loading compares with the host's
        // `SIGNATURE` and `PARAM_LAYOUT` (`pc_runtime::launch::check_layout`),
        // so a signature or a type that depends on the target is refused,
        // not launched with the host's idea of it. `used` and unmangled: it stays in
        // the PTX under a name the host can find.
        #[cfg(target_arch = "nvptx64")]
        #[unsafe(no_mangle)]
        #[used]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #vis static #layout_symbol: [u32; #layout_len] = [
            #layout_count,
            #signature_lo,
            #signature_hi,
            #(::core::mem::size_of::<#layout_types>() as u32, ::core::mem::align_of::<#layout_types>() as u32),*
        ];

        #[cfg(not(target_arch = "nvptx64"))]
        #[doc = #struct_doc]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #launcher;

        #[cfg(not(target_arch = "nvptx64"))]
        // The crate's marker must be its own (kernel_crate!() here), not one
        // brought in from another crate, whose PTX would then load these
        // launchers.
        #[cfg(not(target_arch = "nvptx64"))]
        const _: () = ::core::assert!(
            ::nvptx_std::host::same_str(<crate::KernelCrate as ::nvptx_std::host::KernelCrateMarker>::PACKAGE, ::core::env!("CARGO_PKG_NAME")),
            "crate::KernelCrate is another package's marker: call nvptx_std::kernel_crate!() at this crate's root instead of importing one"
        );

        #[cfg(not(target_arch = "nvptx64"))]
        impl ::nvptx_std::host::KernelEntry for #launcher {
            type Crate = crate::KernelCrate;
            const NAME: &'static str = #name_str;
            const PARAM_BYTES: &'static [usize] = &[#(#sizes),*];
            const SIGNATURE: u64 = #signature;
            const PARAM_LAYOUT: &'static [::nvptx_std::host::ParamLayout] = &[#(::nvptx_std::host::ParamLayout {
                name: #layout_names,
                size: ::core::mem::size_of::<#layout_types>(),
                align: ::core::mem::align_of::<#layout_types>(),
            }),*];
        }

        #[cfg(not(target_arch = "nvptx64"))]
        const _: () = {
            #[::nvptx_std::host::linkme::distributed_slice(::nvptx_std::host::KERNEL_ENTRIES)]
            #[linkme(crate = ::nvptx_std::host::linkme)]
            static ENTRY: ::nvptx_std::host::EntryInfo = ::nvptx_std::host::EntryInfo {
                krate: ::core::env!("CARGO_PKG_NAME"),
                name: #name_str,
                param_bytes: <#launcher as ::nvptx_std::host::KernelEntry>::PARAM_BYTES,
                param_layout: <#launcher as ::nvptx_std::host::KernelEntry>::PARAM_LAYOUT,
                signature: <#launcher as ::nvptx_std::host::KernelEntry>::SIGNATURE,
            };
        };

        #[cfg(not(target_arch = "nvptx64"))]
        impl #launcher {
            #[doc = #launch_doc]
            #[allow(clippy::too_many_arguments)]
            #vis unsafe fn #launch(
                #kernel: &::nvptx_std::host::Kernel<Self>,
                #stream: &::nvptx_std::host::CudaStream,
                #cfg: ::nvptx_std::host::LaunchConfig,
                #(#host_params),*
            ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                let mut #args = ::nvptx_std::host::Args::new(#kernel, #stream, #cfg)?;
                #(#pushes)*
                #same_len
                // SAFETY: the argument list was built from this kernel's own
                // signature; ordering is the caller's contract.
                unsafe { #args.launch() }
            }

            /// The kernel's body compiled for the host: never called, so
            /// host builds type-check it and its imports count as used.
            #[doc(hidden)]
            #[allow(dead_code, unused_mut, clippy::all)]
            #(#allows)*
            fn #body_fn(#user_inputs) #block
        }

        #pdl_host

        #map_impl

        #halo_impl

        #flag_map_impl

        #warp_map_impl

        const _: () = {
            #[allow(dead_code)]
            fn __out_param<P: ::nvptx_std::param::OutParam>() {}
            #[allow(dead_code)]
            fn __ring_param<P: ::nvptx_std::param::RingParam>() {}
            #[allow(dead_code)]
            fn __param_checks() {
                #(#checks)*
            }
        };
    })
}

/// The names of the launchers' own parameters (`kernel`, `stream`, `cfg`,
/// `launch_with_faults`'s `pdl`) and of their argument list (`__args`):
/// those, unless the kernel has a parameter of that name, which the
/// launcher takes under its own name; the fixed one then gets `_`s appended
/// until it is unique.
struct Fixed {
    kernel: Ident,
    stream: Ident,
    cfg: Ident,
    pdl: Ident,
    args: Ident,
}

impl Fixed {
    fn new(params: &[Param]) -> Self {
        let fresh = |base: &str| {
            let mut name = base.to_string();
            while params.iter().any(|p| p.name == name.as_str()) {
                name.push('_');
            }
            Ident::new(&name, Span::call_site())
        };
        Fixed { kernel: fresh("kernel"), stream: fresh("stream"), cfg: fresh("cfg"), pdl: fresh("pdl"), args: fresh("__args") }
    }
}

/// For `#[kernel(pdl)]`: the `PdlKernel` marker (only such kernels may be
/// launched with the programmatic stream serialization attribute) and
/// `launch_pdl`; with `faults = f` also `launch_with_faults`, the one
/// launcher that takes the fault bits (every other passes 0).
fn pdl_launchers(
    attr: &KernelAttr,
    launcher: &Ident,
    name_str: &str,
    Fixed { kernel, stream, cfg, pdl, args }: &Fixed,
    (params, pushes): (&[Tokens], &[Tokens]),
    (params_all, pushes_all): (&[Tokens], &[Tokens]),
    same_len: &Tokens,
) -> Tokens {
    let Some(pdl_span) = attr.pdl else { return quote! {} };
    let launch_pdl = Ident::new("launch_pdl", pdl_span);
    let pdl_doc = format!(
        "Launches `{name_str}` like `launch`, with the programmatic stream serialization attribute (PDL, sm_90): \
         it may start before the kernel ahead of it on `stream` has completed, once that kernel's blocks have all \
         executed `griddepcontrol.launch_dependents` or exited. The `griddepcontrol.wait` that `#[kernel(pdl)]` put \
         before the body holds every thread until that kernel has completed and its writes are visible, so the \
         stream's order still holds for memory.\n\n\
         # Safety\n\
         As `launch`."
    );
    let faulty = attr.faults.as_ref().map(|f| {
        let doc = format!(
            "Launches `{name_str}` with the fault bits `{f}` (`nvptx_std::hopper::pdl::fault`), with the PDL attribute \
             when `pdl` is true: the sync checker's knob. With no bit set it is `launch`/`launch_pdl`.\n\n\
             # Safety\n\
             As `launch`, and: a fault bit breaks the protocol on purpose. With `SKIP_WAIT` and `pdl`, this kernel \
             reads its inputs, and writes its outputs, while the kernel ahead of it on the stream may still write or \
             read them: a data race on device memory. Call it only to show that race (elements are `Element`s, any \
             bits valid), and judge the results only by verification against the CPU reference."
        );
        quote! {
            #[doc = #doc]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn launch_with_faults(
                #kernel: &::nvptx_std::host::Kernel<Self>,
                #stream: &::nvptx_std::host::CudaStream,
                #cfg: ::nvptx_std::host::LaunchConfig,
                #pdl: bool,
                #(#params_all),*
            ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                let mut #args = ::nvptx_std::host::Args::new(#kernel, #stream, #cfg)?;
                #(#pushes_all)*
                #same_len
                // SAFETY: the argument list was built from this kernel's own
                // signature; ordering and the fault's race are the caller's contract.
                unsafe { if #pdl { #args.launch_pdl() } else { #args.launch() } }
            }
        }
    });
    quote! {
        // SAFETY: the entry above executes `griddepcontrol.wait` before its
        // body (the fault knob, if any, is passed 0 by every launcher but
        // the unsafe `launch_with_faults`, whose contract covers it).
        #[cfg(not(target_arch = "nvptx64"))]
        unsafe impl ::nvptx_std::host::PdlKernel for #launcher {}

        #[cfg(not(target_arch = "nvptx64"))]
        impl #launcher {
            #[doc = #pdl_doc]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn #launch_pdl(
                #kernel: &::nvptx_std::host::Kernel<Self>,
                #stream: &::nvptx_std::host::CudaStream,
                #cfg: ::nvptx_std::host::LaunchConfig,
                #(#params),*
            ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                let mut #args = ::nvptx_std::host::Args::new(#kernel, #stream, #cfg)?;
                #(#pushes)*
                #same_len
                // SAFETY: the argument list was built from this kernel's own
                // signature; ordering is the caller's contract.
                unsafe { #args.launch_pdl() }
            }

            #faulty
        }
    }
}

/// A kernel of the map shape `(input: &[I], output: Out<O>, params..)`
/// also implements `nvptx_std::host::MapKernel`, so a pipeline can run it as
/// a stage; its parameters after `output` become the stage's run-time values
/// (see [`stage_params`]).
///
/// A `#[kernel(pdl)]` of the map shape also implements
/// `nvptx_std::host::PdlMapKernel` (the same launch, with the PDL attribute
/// and the fault knob when asked), so a pipeline can run it as the stage's
/// form in the PDL grains. A kernel that writes `OutTiles` (a ring kernel,
/// see [`warp_map_kernel_impl`]) is none of these: its launch needs the
/// ring's shared memory and a watchdog record that only its form provides.
fn map_kernel_impl(params: &[Param], launcher: &Ident, vis: &syn::Visibility, attr: &KernelAttr) -> Tokens {
    let [Param { kind: Kind::Slice(i), .. }, Param { kind: Kind::Out(_, o), .. }, extras @ ..] = params else {
        return quote! {};
    };
    if writes_tiles(params) {
        return quote! {};
    }
    let faults = attr.faults.as_ref();
    let Some(sp) = stage_params(extras, launcher, vis, faults) else { return quote! {} };
    let StageParams { items, ty, bounds, bind, args, args_all } = sp;
    let pdl_impl = attr.pdl.map(|_| {
        // With a fault knob the one launcher that takes it; else the plain
        // or PDL launcher, the bits ignored.
        let launch = if faults.is_some() {
            quote! { unsafe { Self::launch_with_faults(kernel, stream, cfg, pdl, input, output #(, #args_all)*) } }
        } else {
            quote! {
                let _ = fault_bits;
                unsafe { if pdl { Self::launch_pdl(kernel, stream, cfg, input, output #(, #args)*) } else { Self::launch(kernel, stream, cfg, input, output #(, #args)*) } }
            }
        };
        quote! {
            #[cfg(not(target_arch = "nvptx64"))]
            impl ::nvptx_std::host::PdlMapKernel for #launcher
            where
                for<'a> #i: ::nvptx_std::Element,
                for<'a> #o: ::nvptx_std::Element,
                #(#bounds,)*
            {
                unsafe fn launch_map_pdl(
                    kernel: &::nvptx_std::host::Kernel<Self>,
                    stream: &::nvptx_std::host::CudaStream,
                    cfg: ::nvptx_std::host::LaunchConfig,
                    pdl: bool,
                    fault_bits: u32,
                    input: &::nvptx_std::host::CudaView<'_, #i>,
                    output: &mut ::nvptx_std::host::CudaViewMut<'_, #o>,
                    params: &<#ty as ::nvptx_std::host::KernelParams>::OnDevice,
                ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                    let #bind = params;
                    // SAFETY: the caller's contract is this launcher's (and
                    // `launch_with_faults`'s for the bits).
                    #launch
                }
            }
        }
    });
    quote! {
        #pdl_impl

        #items

        // The bounds are written `for<'a>` so that a kernel whose types are
        // not all `Element`s (`&[AtomicU32]` in) still compiles: it is a
        // kernel, just not a stage, and using it as one names the missing
        // bound.
        #[cfg(not(target_arch = "nvptx64"))]
        impl ::nvptx_std::host::MapKernel for #launcher
        where
            for<'a> #i: ::nvptx_std::Element,
            for<'a> #o: ::nvptx_std::Element,
            #(#bounds,)*
        {
            type In = #i;
            type Out = #o;
            type Params = #ty;
            unsafe fn launch_map(
                kernel: &::nvptx_std::host::Kernel<Self>,
                stream: &::nvptx_std::host::CudaStream,
                cfg: ::nvptx_std::host::LaunchConfig,
                input: &::nvptx_std::host::CudaView<'_, #i>,
                output: &mut ::nvptx_std::host::CudaViewMut<'_, #o>,
                params: &<#ty as ::nvptx_std::host::KernelParams>::OnDevice,
            ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                let #bind = params;
                // SAFETY: the caller's contract is this launcher's.
                unsafe { Self::launch(kernel, stream, cfg, input, output #(, #args)*) }
            }
        }
    }
}

/// A kernel of the halo shape `(history: &[I], input: &[I], output:
/// Out<O>, params..)` also implements `nvptx_std::host::HaloKernel`, so a
/// pipeline can run it as a stage that reads elements before each chunk.
/// The first parameter must be named `history` (any other kernel with two
/// input slices means something a pipeline cannot know, e.g. `a + b`), and
/// both slices must be written as the same type. Parameters after `output`
/// are as for [`map_kernel_impl`].
fn halo_kernel_impl(params: &[Param], launcher: &Ident, vis: &syn::Visibility, faults: Option<&Ident>) -> Tokens {
    let [Param { kind: Kind::Slice(h), name, .. }, Param { kind: Kind::Slice(i), .. }, Param { kind: Kind::Out(_, o), .. }, extras @ ..] = params else {
        return quote! {};
    };
    if name != "history" || quote!(#h).to_string() != quote!(#i).to_string() || writes_tiles(params) {
        return quote! {};
    }
    let Some(sp) = stage_params(extras, launcher, vis, faults) else { return quote! {} };
    let StageParams { items, ty, bounds, bind, args, .. } = sp;
    quote! {
        #items

        // `for<'a>`: as for MapKernel.
        #[cfg(not(target_arch = "nvptx64"))]
        impl ::nvptx_std::host::HaloKernel for #launcher
        where
            for<'a> #i: ::nvptx_std::Element,
            for<'a> #o: ::nvptx_std::Element,
            #(#bounds,)*
        {
            type In = #i;
            type Out = #o;
            type Params = #ty;
            unsafe fn launch_halo(
                kernel: &::nvptx_std::host::Kernel<Self>,
                stream: &::nvptx_std::host::CudaStream,
                cfg: ::nvptx_std::host::LaunchConfig,
                history: &::nvptx_std::host::CudaView<'_, #i>,
                input: &::nvptx_std::host::CudaView<'_, #i>,
                output: &mut ::nvptx_std::host::CudaViewMut<'_, #o>,
                params: &<#ty as ::nvptx_std::host::KernelParams>::OnDevice,
            ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                let #bind = params;
                // SAFETY: the caller's contract is this launcher's.
                unsafe { Self::launch(kernel, stream, cfg, history, input, output #(, #args)*) }
            }
        }
    }
}

/// What a stage kernel's parameters after `output` become.
struct StageParams {
    /// The generated `<Launcher>Params` struct and its impls (none without parameters).
    items: Tokens,
    /// `MapKernel::Params`: that struct, or `()`.
    ty: Tokens,
    /// Bounds the stage impl needs (`for<'a> T: Element` for each `&T`/`&[T]`).
    bounds: Vec<Tokens>,
    /// The pattern that takes the device values apart in the launcher.
    bind: Tokens,
    /// The launch's arguments after `output`, in order.
    args: Vec<Tokens>,
    /// The same for `launch_with_faults`: the fault knob included, as
    /// `fault_bits` (the bindings of the parameters are all `__<name>`, so
    /// none hides it).
    args_all: Vec<Tokens>,
}

/// The run-time parameters of a stage kernel: each parameter after
/// `output` becomes a field of a generated `<Launcher>Params` struct (a
/// scalar as itself, `&T` as a `T`, `&[T]` as a `Vec<T>`); the stage owns
/// that value, uploads each `&T`/`&[T]` once per GPU (`ParamBuf`) and passes
/// the same values at every launch and to its CPU reference. A `spin: u64`
/// (by that name: a knob that slows the kernel) is passed 0, and the
/// `faults` knob of a `pdl` kernel is not a parameter of `launch` at all;
/// neither is a field. `None` when a parameter cannot be a run-time value
/// (a second written slice).
fn stage_params(extras: &[Param], launcher: &Ident, vis: &syn::Visibility, faults: Option<&Ident>) -> Option<StageParams> {
    let struct_name = format_ident!("{}Params", launcher);
    let (mut fields, mut field_tys, mut device_tys, mut uploads, mut binds, mut args, mut bounds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut args_all = Vec::new();
    for Param { name, kind, .. } in extras {
        if Some(name) == faults {
            args_all.push(quote! { fault_bits });
            continue;
        }
        let bound = format_ident!("__{}", name);
        match kind {
            Kind::Scalar(t) if name == "spin" && quote!(#t).to_string() == "u64" => {
                args.push(quote! { 0u64 });
                args_all.push(quote! { 0u64 });
                continue;
            }
            Kind::Scalar(t) => {
                field_tys.push(quote! { #t });
                device_tys.push(quote! { #t });
                uploads.push(quote! { self.#name });
                args.push(quote! { *#bound });
            }
            Kind::Shared(t) => {
                field_tys.push(quote! { #t });
                device_tys.push(quote! { ::nvptx_std::host::ParamBuf<#t> });
                uploads.push(quote! { ::nvptx_std::host::ParamBuf::upload(stream, ::core::slice::from_ref(&self.#name))? });
                args.push(quote! { &#bound.view() });
                bounds.push(quote! { for<'a> #t: ::nvptx_std::Element });
            }
            Kind::Slice(t) => {
                field_tys.push(quote! { ::nvptx_std::host::__std::Vec<#t> });
                device_tys.push(quote! { ::nvptx_std::host::ParamBuf<#t> });
                uploads.push(quote! { ::nvptx_std::host::ParamBuf::upload(stream, &self.#name)? });
                args.push(quote! { &#bound.view() });
                bounds.push(quote! { for<'a> #t: ::nvptx_std::Element });
            }
            Kind::Out(..) | Kind::Ring(..) => return None,
        }
        args_all.push(args[args.len() - 1].clone());
        fields.push(name.clone());
        binds.push(bound);
    }
    if fields.is_empty() {
        return Some(StageParams { items: quote! {}, ty: quote! { () }, bounds, bind: quote! { () }, args, args_all });
    }
    let names: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    let doc = format!(
        "The run-time parameters of `{launcher}` as a pipeline stage holds them (its `MapKernel::Params` or \
         `HaloKernel::Params`): {}. The stage passes the same values at every launch and to its CPU reference; \
         each `&T`/`&[T]` is copied to the GPU once, when the stage is prepared.",
        names.join(", ")
    );
    let field_docs = fields.iter().map(|f| format!("The kernel's `{f}`."));
    let field_strs = fields.iter().map(|f| f.to_string());
    let items = quote! {
        #[cfg(not(target_arch = "nvptx64"))]
        #[doc = #doc]
        #vis struct #struct_name {
            #(#[doc = #field_docs] pub #fields: #field_tys,)*
        }

        // By hand, not derived: a field that is not `Clone` (an atomic of a
        // kernel that is no stage) must not stop the crate compiling.
        #[cfg(not(target_arch = "nvptx64"))]
        impl ::core::clone::Clone for #struct_name where #(for<'a> #field_tys: ::core::clone::Clone,)* {
            fn clone(&self) -> Self {
                #struct_name { #(#fields: ::core::clone::Clone::clone(&self.#fields),)* }
            }
        }

        #[cfg(not(target_arch = "nvptx64"))]
        impl ::core::fmt::Debug for #struct_name where #(for<'a> #field_tys: ::core::fmt::Debug,)* {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#struct_name)) #(.field(#field_strs, &self.#fields))* .finish()
            }
        }

        #[cfg(not(target_arch = "nvptx64"))]
        impl ::nvptx_std::host::KernelParams for #struct_name where #(#bounds,)* {
            type OnDevice = (#(#device_tys,)*);
            fn upload(
                &self,
                stream: &::nvptx_std::host::__std::Arc<::nvptx_std::host::CudaStream>,
            ) -> ::core::result::Result<Self::OnDevice, ::nvptx_std::host::Error> {
                ::core::result::Result::Ok((#(#uploads,)*))
            }
        }
    };
    Some(StageParams { items, ty: quote! { #struct_name }, bounds, bind: quote! { (#(#binds,)*) }, args, args_all })
}

/// A kernel of the flag-map shape, `(plan: &RingPlan, ctl: &RingControl,
/// input: RingSlots<I>, in_flags: &RingFlags, output: RingSlots<O>,
/// out_flags: &RingFlags, stamps: &[AtomicU64], stage: u32, spin: u64,
/// faults: u32)` (those names,
/// in that order: a map stage of the flags grain, see `nvptx_std::ring`),
/// also implements `nvptx_std::host::FlagMapKernel`, so a pipeline can run
/// it as that stage's form in the flags grain.
fn flag_map_kernel_impl(params: &[Param], launcher: &Ident) -> Tokens {
    let names: Vec<String> = params.iter().map(|p| p.name.to_string()).collect();
    if names != ["plan", "ctl", "input", "in_flags", "output", "out_flags", "stamps", "stage", "spin", "faults"] {
        return quote! {};
    }
    let (Kind::Ring(_, i), Kind::Ring(_, o)) = (&params[2].kind, &params[4].kind) else { return quote! {} };
    quote! {
        #[cfg(not(target_arch = "nvptx64"))]
        impl ::nvptx_std::host::FlagMapKernel for #launcher {
            type In = #i;
            type Out = #o;
            unsafe fn launch_flag_map(
                kernel: &::nvptx_std::host::Kernel<Self>,
                stream: &::nvptx_std::host::CudaStream,
                cfg: ::nvptx_std::host::LaunchConfig,
                rings: ::nvptx_std::host::FlagMapArgs<'_, '_, #i, #o>,
            ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                let ::nvptx_std::host::FlagMapArgs { plan, ctl, input, in_flags, output, out_flags, stamps, stage, spin, faults } = rings;
                // SAFETY: the caller's contract is this launcher's.
                unsafe { Self::launch(kernel, stream, cfg, plan, ctl, input, in_flags, output, out_flags, stamps, stage, spin, faults) }
            }
        }
    }
}

/// Whether the kernel writes an `OutTiles`: the output of a warp-ring
/// kernel (`nvptx_std::hopper::ring`), whose launch needs the ring's shared
/// memory and whose parameters (`watch`, an address its watchdog writes)
/// no stage may set: never a `MapKernel` or `HaloKernel`.
fn writes_tiles(params: &[Param]) -> bool {
    params.iter().any(|p| matches!(&p.kind, Kind::Out(Type::Path(t), _) if t.path.segments.last().is_some_and(|s| s.ident == "OutTiles")))
}

/// The warp-ring map shape, by names and types: `(input: &[I], output:
/// OutTiles<O>, slots: u32, slot_bytes: u32, timeout_ns: u64, watch: u64,
/// spin: u64, faults: u32)`.
fn is_warp_map_shape(params: &[Param]) -> bool {
    let names: Vec<String> = params.iter().map(|p| p.name.to_string()).collect();
    let scalar = |p: &Param, ty: &str| matches!(&p.kind, Kind::Scalar(t) if quote!(#t).to_string() == ty);
    names == ["input", "output", "slots", "slot_bytes", "timeout_ns", "watch", "spin", "faults"]
        && matches!(&params[0].kind, Kind::Slice(_))
        && writes_tiles(&params[1..2])
        && ["u32", "u32", "u64", "u64", "u64", "u32"].iter().zip(&params[2..]).all(|(ty, p)| scalar(p, ty))
}

/// A `#[kernel(pdl, faults = faults)]` of the warp-ring map shape
/// ([`is_warp_map_shape`]: a map stage on the warp-specialized ring, see
/// `nvptx_std::hopper::ring::map_stage`) implements
/// `nvptx_std::host::WarpMapKernel`, so a pipeline can run it as the
/// stage's form in the warps grain.
fn warp_map_kernel_impl(params: &[Param], launcher: &Ident, attr: &KernelAttr) -> Tokens {
    if !is_warp_map_shape(params) || attr.pdl.is_none() || !attr.faults.as_ref().is_some_and(|f| f == "faults") {
        return quote! {};
    }
    let (Kind::Slice(i), Kind::Out(_, o)) = (&params[0].kind, &params[1].kind) else { return quote! {} };
    quote! {
        #[cfg(not(target_arch = "nvptx64"))]
        impl ::nvptx_std::host::WarpMapKernel for #launcher
        where
            for<'a> #i: ::nvptx_std::Element,
            for<'a> #o: ::nvptx_std::Element,
        {
            type In = #i;
            type Out = #o;
            unsafe fn launch_warp_map(
                kernel: &::nvptx_std::host::Kernel<Self>,
                stream: &::nvptx_std::host::CudaStream,
                cfg: ::nvptx_std::host::LaunchConfig,
                input: &::nvptx_std::host::CudaView<'_, #i>,
                output: &mut ::nvptx_std::host::CudaViewMut<'_, #o>,
                ring: ::nvptx_std::host::WarpRingArgs,
            ) -> ::core::result::Result<(), ::nvptx_std::host::Error> {
                let ::nvptx_std::host::WarpRingArgs { slots, slot_bytes, timeout_ns, watch, spin, faults } = ring;
                // SAFETY: the caller's contract is this launcher's.
                unsafe { Self::launch_with_faults(kernel, stream, cfg, false, input, output, slots, slot_bytes, timeout_ns, watch, spin, faults) }
            }
        }
    }
}

/// `#[derive(Element)]`: implements `Element` for a struct that is one.
///
/// ```ignore
/// use nvptx_std::Element; // or kernel_math::Element: the trait and the derive
///
/// #[repr(C)]
/// #[derive(Clone, Copy, Element)]
/// pub struct Sample { left: i16, right: i16 }
/// ```
///
/// What makes a struct an `Element` is checked at compile time instead of
/// promised: it must be `#[repr(C)]` or `#[repr(transparent)]` (the default
/// layout may reorder fields, so host and device could disagree), every
/// field must be an `Element` (so no `bool`, `char`, enum or reference: bit
/// patterns that are not valid values), and the struct's size must be the
/// sum of its fields' (no padding, whose bytes are uninitialized). The
/// trait is named through the crate that provides it: `kernel-math` if the
/// deriving crate depends on it, else `nvptx-std`.
#[proc_macro_derive(Element)]
pub fn derive_element(item: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(item as syn::DeriveInput);
    match derive_element_impl(&input) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The path of the crate that defines `Element`, as the deriving crate names it.
fn element_crate() -> syn::Result<Tokens> {
    use proc_macro_crate::{FoundCrate, crate_name};
    let found = |c: FoundCrate| match c {
        // kernel-math itself has `extern crate self as kernel_math`, and its
        // doctests and tests name it so.
        FoundCrate::Itself => quote! { ::kernel_math },
        FoundCrate::Name(n) => {
            let n = Ident::new(&n, Span::call_site());
            quote! { ::#n }
        }
    };
    if let Ok(c) = crate_name("kernel-math") {
        return Ok(found(c));
    }
    match crate_name("nvptx-std") {
        Ok(FoundCrate::Itself) => Ok(quote! { crate }),
        Ok(c) => Ok(found(c)),
        Err(_) => Err(syn::Error::new(Span::call_site(), "#[derive(Element)] implements `kernel_math::Element`: depend on nvptx-std or kernel-math")),
    }
}

fn derive_element_impl(input: &syn::DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let fields = match &input.data {
        syn::Data::Struct(s) => &s.fields,
        syn::Data::Enum(_) => {
            return Err(syn::Error::new(
                name.span(),
                "#[derive(Element)] is for structs: device memory may hold any bits, and most bit patterns are not a valid enum (use its integer instead)",
            ));
        }
        syn::Data::Union(_) => return Err(syn::Error::new(name.span(), "#[derive(Element)] is for structs, not unions")),
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(Element)] takes no generic structs (padding depends on the parameters); write `unsafe impl Element` per instance",
        ));
    }
    let mut layout_ok = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("C") || meta.path.is_ident("transparent") {
                layout_ok = true;
            }
            // Other hints (`packed`, `align(n)`) are accepted: the size check
            // below catches any padding they add.
            if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                let _: Tokens = content.parse()?;
            }
            Ok(())
        })?;
    }
    if !layout_ok {
        return Err(syn::Error::new(
            name.span(),
            format!(
                "#[derive(Element)] needs `#[repr(C)]` (or `#[repr(transparent)]`) on `{name}`: Rust's default layout may reorder fields, so the host and the GPU could disagree on where each one is"
            ),
        ));
    }
    if fields.is_empty() {
        return Err(syn::Error::new(name.span(), "#[derive(Element)] needs at least one field: an element of no bytes carries nothing"));
    }
    let krate = element_crate()?;
    let tys: Vec<&Type> = fields.iter().map(|f| &f.ty).collect();
    let field_checks = tys.iter().map(|t| quote_spanned! {t.span()=> __field_is_element::<#t>(); });
    let padding = format!(
        "`{name}` has padding (its size is more than the sum of its fields'): padding bytes are uninitialized, so it cannot be an Element; reorder the fields largest first or add explicit fields for the gaps"
    );
    Ok(quote! {
        // SAFETY: checked just below at compile time: a C (or transparent)
        // layout, every field an `Element` (any bits valid, no pointers), and
        // no padding (the size is the sum of the fields'). Copy, Send, Sync
        // and 'static are the trait's own bounds.
        unsafe impl #krate::Element for #name {}

        const _: () = {
            #[allow(dead_code)]
            fn __field_is_element<T: #krate::Element>() {}
            #[allow(dead_code)]
            fn __fields_are_elements() {
                #(#field_checks)*
            }
            ::core::assert!(::core::mem::size_of::<#name>() == 0 #(+ ::core::mem::size_of::<#tys>())*, #padding);
        };
    })
}
