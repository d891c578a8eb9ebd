//! `#[netclaim_lab::test]`: registers a lab test with `netclaim_lab::main!()`'s runner,
//! which reports it as *ignored, with the reason* where labs cannot be built, and runs
//! an `async` body on a runtime inside its lab. Use it through `netclaim-lab`.

#![deny(missing_docs)]

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{parse_macro_input, Expr, FnArg, ItemFn, Token};

/// `lab = <expression building a LabBuilder>`.
struct Args {
    lab: Option<Expr>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Self { lab: None });
        }
        let key: syn::Ident = input.parse()?;
        if key != "lab" {
            return Err(syn::Error::new(
                key.span(),
                "unknown argument: the only one is `lab = <LabBuilder>`",
            ));
        }
        input.parse::<Token![=]>()?;
        let lab: Expr = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("expected nothing after `lab = …`"));
        }
        Ok(Self { lab: Some(lab) })
    }
}

/// Marks a lab test. The function takes nothing, or `&Lab` (built from `lab = <builder>`,
/// or a plain lab); it may be `async` (then it runs on a current-thread tokio runtime
/// inside its lab, so its sockets are the lab's) and may return `()` or a `Result`.
/// The test binary needs `harness = false` and `netclaim_lab::main!();`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as Args);
    let func = parse_macro_input!(item as ItemFn);
    match expand(args, &func) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(args: Args, func: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let name = &func.sig.ident;
    let takes_lab = match func.sig.inputs.len() {
        0 => false,
        1 => match &func.sig.inputs[0] {
            FnArg::Typed(_) => true,
            FnArg::Receiver(r) => {
                return Err(syn::Error::new_spanned(r, "a lab test cannot take self"))
            }
        },
        _ => {
            return Err(syn::Error::new_spanned(
                &func.sig.inputs,
                "a lab test takes nothing, or one `&Lab`",
            ))
        }
    };
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.generics,
            "a lab test cannot be generic",
        ));
    }
    let is_async = func.sig.asyncness.is_some();
    let builder = match &args.lab {
        Some(e) => quote! { #e },
        None => quote! { ::netclaim_lab::Lab::builder() },
    };
    let call = match (is_async, takes_lab) {
        (false, false) => quote! { ::netclaim_lab::__private::outcome(#name()) },
        (false, true) => quote! {
            let lab = ::netclaim_lab::__private::build(#builder)?;
            ::netclaim_lab::__private::outcome(#name(&lab))
        },
        (true, false) => quote! {
            let lab = ::netclaim_lab::__private::build(#builder)?;
            ::netclaim_lab::__private::block_on(&lab, || #name())
        },
        (true, true) => quote! {
            let lab = ::netclaim_lab::__private::build(#builder)?;
            ::netclaim_lab::__private::block_on(&lab, || #name(&lab))
        },
    };
    let entry = format_ident!("__NETCLAIM_LAB_TEST_{}", name.to_string().to_uppercase());
    let runner = format_ident!("__netclaim_lab_run_{}", name);
    Ok(quote! {
        #func

        #[doc(hidden)]
        fn #runner() -> ::std::result::Result<(), ::netclaim_lab::TestError> {
            #call
        }

        #[doc(hidden)]
        #[::netclaim_lab::__private::linkme::distributed_slice(::netclaim_lab::TESTS)]
        #[linkme(crate = ::netclaim_lab::__private::linkme)]
        static #entry: ::netclaim_lab::LabTest = ::netclaim_lab::LabTest {
            module: ::std::module_path!(),
            name: ::std::stringify!(#name),
            run: #runner,
        };
    })
}
