// The libFuzzer entry of bulwark-fuzz. SwiftPM names an executable's entry point
// `<target>_main` and points `main` at it; in a fuzz build (tools/fuzz passes
// -DBULWARK_FUZZING) this file defines that entry to run libFuzzer's driver, which calls
// LLVMFuzzerTestOneInput (defined in Swift) for every input. In other builds it is empty.
#pragma once
