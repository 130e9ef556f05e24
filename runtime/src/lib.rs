//! The runtime: devices, buffers and executing compiled programs.
