internal import CLinux

/// The C allocator (glibc malloc), for the few calls Swift's Glibc module does not export.
package enum Allocator {
    /// Gives free heap pages back to the kernel (malloc_trim(0)): after a
    /// burst of work, so that what it freed stops counting as resident.
    package static func trim() {
        _ = lanyard_malloc_trim(0)
    }
}
