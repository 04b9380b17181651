pub mod common;
pub mod dropout;
pub mod mc;
