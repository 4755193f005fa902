//! Fuzz target: Godot Variants and SceneMultiplayer packets (see `netplay::fuzz::multiplayer`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    netplay::fuzz::multiplayer(data);
});
