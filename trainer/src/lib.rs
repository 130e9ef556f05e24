//! The trainer: Lightning's loop around one compiled step program.
