//! The task record: its size, and its key and args in one allocation.

use super::*;

#[test]
fn task_struct_stays_compact() {
    let size = std::mem::size_of::<Task>();
    println!("size_of::<Task>() = {size} bytes");
    // key + args (16) + output box (8) + 3 u64 (24) + 7 u32 (28) + 4 bytes. It was 120 with the
    // options inline, the args as `Bytes` and the key in a box of its own.
    assert!(size <= 80, "Task grew to {size} bytes");
    // A slot of the task table costs no more than the task.
    assert_eq!(std::mem::size_of::<Option<Task>>(), size);
}
