pub mod common;
pub mod dropout;
pub mod gp;
pub mod lenet;
pub mod mc;
pub mod pool;
