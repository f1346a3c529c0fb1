/**
 * The libc calls the KVM backend makes, through Deno FFI (`Deno.dlopen`):
 * `open`, `close`, `ioctl`, `mmap`, `munmap`, `setitimer`, and errno
 * (`__errno_location`, `strerror`). Opened lazily on first use, so importing
 * this module costs nothing where the backend is not used.
 *
 * @module
 */

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  /** ioctl(fd, request, void *arg). */
  ioctl_ptr: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** ioctl(fd, request, unsigned long arg). */
  ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  gettid: { parameters: [], result: "i32" },
  timer_create: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  timer_settime: { parameters: ["pointer", "i32", "buffer", "pointer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/** The libc symbols (dlopen'd once per process). */
export function libc(): Libc {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return lib.symbols;
}

/** The calling thread's errno (read right after the failing call). */
export function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32(0);
}

/** strerror(errno). */
export function strerror(err: number): string {
  const p = libc().strerror(err);
  return p === null ? `errno ${err}` : Deno.UnsafePointerView.getCString(p);
}

/** Symbolic names of the errno values the backend reports (Linux x86-64). */
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  25: "ENOTTY",
  28: "ENOSPC",
  38: "ENOSYS",
  95: "EOPNOTSUPP",
};

/** `EINVAL`, or `errno 123` for values without a name here. */
export function errnoName(err: number): string {
  return ERRNO_NAMES[err] ?? `errno ${err}`;
}

export const EINTR = 4;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
/** mmap's MAP_FAILED, (void *)-1. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
export const CLOCK_MONOTONIC = 1;
/**
 * The watchdog's signal. SIGWINCH's default action is "ignore", so a timer
 * signal still in flight after the listener is gone cannot terminate the
 * process (SIGALRM's default action would: seen as "Alarm clock" in a test
 * run); while the listener is installed it interrupts KVM_RUN like any other
 * handled signal.
 */
export const WATCHDOG_SIGNAL = 28; // SIGWINCH on x86-64 and arm64 Linux
export const WATCHDOG_SIGNAL_NAME = "SIGWINCH";
/** `SIGEV_THREAD_ID`: deliver the timer's signal to one thread (`sigev_notify_thread_id`). */
export const SIGEV_THREAD_ID = 4;

/** A NUL-terminated C string. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${s}\0`) as Uint8Array<ArrayBuffer>;
}
