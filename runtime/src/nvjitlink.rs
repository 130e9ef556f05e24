//! PTX to cubin in this process with NVIDIA's nvJitLink library, on threads.
//!
//! Why: the driver JIT-compiles PTX text inside `cuModuleLoadData`, and it
//! serializes those loads: on an H100 with its cache off, W1 took 812 ms on
//! 16 threads against 577 ms on one, W3 2.6 s either way (103 kernels). That
//! JIT was most of a step's compile time. nvJitLink runs the same assembler
//! (ptxas) as a library with one handle per call, so the parts of a module
//! (`ptx::split::split_module`) compile on parallel threads; the driver then
//! only loads finished machine code.
//!
//! The library is dlopen'ed (like cudarc's): from `JLC_NVJITLINK` (a path),
//! else `libnvJitLink.so.<major>` for the driver's CUDA major version and
//! its neighbours, found through the loader's path (the CUDA toolkit, or the
//! `nvidia-nvjitlink` wheel that JAX and PyTorch install). Its entry points
//! are versioned (`__nvJitLinkCreate_12_0`): we bind the `.0` ones of the
//! library's major, which every minor release keeps.

use std::ffi::{c_char, c_int, c_uint, c_void, CString};

type Handle = *mut c_void;

/// nvJitLinkInputType's PTX member.
const INPUT_PTX: c_int = 2;

/// An opened nvJitLink library and its entry points.
pub struct NvJitLink {
    /// `(major, minor)` of the library.
    pub version: (u32, u32),
    create: unsafe extern "C" fn(*mut Handle, c_uint, *const *const c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut Handle) -> c_int,
    add_data: unsafe extern "C" fn(Handle, c_int, *const c_void, usize, *const c_char) -> c_int,
    complete: unsafe extern "C" fn(Handle) -> c_int,
    cubin_size: unsafe extern "C" fn(Handle, *mut usize) -> c_int,
    cubin: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    error_log_size: unsafe extern "C" fn(Handle, *mut usize) -> c_int,
    error_log: unsafe extern "C" fn(Handle, *mut c_char) -> c_int,
    /// Keeps the entry points above mapped.
    _lib: libloading::Library,
}

impl NvJitLink {
    /// Opens the library: `JLC_NVJITLINK` if set, else the first of
    /// `libnvJitLink.so.{driver_major, 13, 12}` the loader finds.
    pub fn open(driver_major: u32) -> Result<NvJitLink, String> {
        if let Some(path) = std::env::var_os("JLC_NVJITLINK") {
            return NvJitLink::open_path(&path.to_string_lossy());
        }
        let mut majors = vec![driver_major];
        majors.extend([13, 12].into_iter().filter(|&m| m != driver_major));
        let mut errors = Vec::new();
        for major in majors {
            match NvJitLink::open_path(&format!("libnvJitLink.so.{major}")) {
                Ok(lib) => return Ok(lib),
                Err(e) => errors.push(e),
            }
        }
        Err(errors.join("; "))
    }

    fn open_path(path: &str) -> Result<NvJitLink, String> {
        // Safety: loading the library runs its initializers, which is what
        // NVIDIA ships it for.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{path}: {e}"))?;
        let version = {
            // Safety: the signature of nvJitLinkVersion in nvJitLink.h.
            let f: libloading::Symbol<unsafe extern "C" fn(*mut c_uint, *mut c_uint) -> c_int> =
                unsafe { lib.get(b"nvJitLinkVersion\0") }.map_err(|e| format!("{path}: {e}"))?;
            let (mut major, mut minor) = (0, 0);
            // Safety: two out-parameters.
            let status = unsafe { f(&mut major, &mut minor) };
            if status != 0 {
                return Err(format!("{path}: nvJitLinkVersion failed with status {status}"));
            }
            (major, minor)
        };
        let symbol = |name: &str| format!("__nvJitLink{name}_{}_0\0", version.0);
        macro_rules! bind {
            ($name:literal) => {{
                let sym = symbol($name);
                // Safety: the field's type is the signature nvJitLink.h
                // declares for this entry point.
                *unsafe { lib.get(sym.as_bytes()) }.map_err(|e| format!("{path}: {e}"))?
            }};
        }
        Ok(NvJitLink {
            version,
            create: bind!("Create"),
            destroy: bind!("Destroy"),
            add_data: bind!("AddData"),
            complete: bind!("Complete"),
            cubin_size: bind!("GetLinkedCubinSize"),
            cubin: bind!("GetLinkedCubin"),
            error_log_size: bind!("GetErrorLogSize"),
            error_log: bind!("GetErrorLog"),
            _lib: lib,
        })
    }

    /// Assembles one PTX module for `sm_<arch>` (e.g. 90) into a cubin, at
    /// ptxas's default optimization (-O3). Measured with W3's 105 kernels
    /// on this VM: -O0 (the only other level nvJitLink accepts) saved 8% of
    /// the time and made the code 2.9x larger.
    pub fn compile(&self, ptx: &str, arch: u32) -> Result<Vec<u8>, String> {
        let options = [format!("-arch=sm_{arch}")];
        let options: Vec<CString> = options.iter().map(|o| CString::new(o.as_str()).expect("no NUL")).collect();
        let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        let mut handle: Handle = std::ptr::null_mut();
        // Safety: the options outlive the call; `handle` is an out-parameter.
        let status = unsafe { (self.create)(&mut handle, option_ptrs.len() as c_uint, option_ptrs.as_ptr()) };
        if status != 0 {
            return Err(format!("nvJitLinkCreate failed with status {status}"));
        }
        let result = self.compile_with(handle, ptx);
        // Safety: `handle` came from a successful create and is destroyed once.
        unsafe { (self.destroy)(&mut handle) };
        result
    }

    fn compile_with(&self, handle: Handle, ptx: &str) -> Result<Vec<u8>, String> {
        let name = c"jlc.ptx";
        // The library reads PTX as a C string: without its NUL it rejects it
        // ("does not match type NVJITLINK_INPUT_PTX").
        let ptx = CString::new(ptx).map_err(|_| "the PTX text contains a NUL byte".to_string())?;
        let bytes = ptx.as_bytes_with_nul();
        // Safety: the PTX bytes and the name live across the call, which
        // copies them.
        let status = unsafe { (self.add_data)(handle, INPUT_PTX, bytes.as_ptr().cast(), bytes.len(), name.as_ptr()) };
        if status != 0 {
            return Err(format!("nvJitLinkAddData failed with status {status}: {}", self.log(handle)));
        }
        // Safety: a handle with its input added.
        let status = unsafe { (self.complete)(handle) };
        if status != 0 {
            return Err(format!("nvJitLinkComplete failed with status {status}: {}", self.log(handle)));
        }
        let mut size = 0usize;
        // Safety: out-parameter of a completed handle.
        let status = unsafe { (self.cubin_size)(handle, &mut size) };
        if status != 0 {
            return Err(format!("nvJitLinkGetLinkedCubinSize failed with status {status}"));
        }
        let mut cubin = vec![0u8; size];
        // Safety: `cubin` has the size the library just reported.
        let status = unsafe { (self.cubin)(handle, cubin.as_mut_ptr().cast()) };
        if status != 0 {
            return Err(format!("nvJitLinkGetLinkedCubin failed with status {status}"));
        }
        Ok(cubin)
    }

    /// The handle's error log, trimmed (empty if there is none).
    fn log(&self, handle: Handle) -> String {
        let mut size = 0usize;
        // Safety: out-parameter.
        if unsafe { (self.error_log_size)(handle, &mut size) } != 0 || size == 0 {
            return String::new();
        }
        let mut buf = vec![0u8; size];
        // Safety: `buf` has the reported size, NUL included.
        if unsafe { (self.error_log)(handle, buf.as_mut_ptr().cast()) } != 0 {
            return String::new();
        }
        String::from_utf8_lossy(&buf).trim_end_matches('\0').trim().to_string()
    }

    /// Assembles each module on a thread of its own; the cubins in order.
    /// Every call pays a fixed cost (~20 ms on this VM: 67 modules of W3
    /// took 2.8 s one by one, the same kernels as one module 1.5 s), so
    /// split a program into as many parts as there are cores, no more.
    pub fn compile_all(&self, modules: &[&str], arch: u32) -> Result<Vec<Vec<u8>>, String> {
        if let [one] = modules {
            return Ok(vec![self.compile(one, arch)?]);
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = modules.iter().map(|ptx| scope.spawn(move || self.compile(ptx, arch))).collect();
            handles.into_iter().map(|h| h.join().expect("an nvJitLink thread panicked")).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny kernel: `out[i] = in[i] * 2`.
    const PTX: &str = ".version 7.8\n.target sm_80\n.address_size 64\n\
.visible .entry twice(.param .u64 a, .param .u64 b)\n{\n\
.reg .b64 %rd<4>;\n.reg .f32 %f<3>;\n.reg .b32 %r<3>;\n\
ld.param.u64 %rd1, [a];\nld.param.u64 %rd2, [b];\n\
mov.u32 %r1, %tid.x;\nmul.wide.u32 %rd3, %r1, 4;\nadd.u64 %rd1, %rd1, %rd3;\nadd.u64 %rd2, %rd2, %rd3;\n\
ld.global.f32 %f1, [%rd1];\nadd.f32 %f2, %f1, %f1;\nst.global.f32 [%rd2], %f2;\nret;\n}\n";

    /// Where the library is installed (JLC_NVJITLINK or the loader finds
    /// it), the kernel assembles into an ELF cubin on two threads, and bad
    /// PTX fails with the assembler's message. Elsewhere it says so.
    #[test]
    fn assembles_ptx_where_the_library_is_installed() {
        let lib = match NvJitLink::open(12) {
            Ok(lib) => lib,
            Err(e) => {
                println!("nvJitLink not found, skipping: {e}");
                return;
            }
        };
        let cubins = lib.compile_all(&[PTX, PTX], 90).expect("assembles");
        for cubin in &cubins {
            assert_eq!(&cubin[..4], b"\x7fELF", "a cubin is an ELF file");
        }
        let bad = PTX.replace("add.f32 %f2, %f1, %f1", "add.f32 %f2, %f1, %nope");
        let err = lib.compile(&bad, 90).expect_err("undefined register");
        assert!(err.contains("nope"), "{err}");
    }
}
