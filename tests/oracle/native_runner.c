/*
 * Native oracle for kvmsim's integer-instruction tests: runs raw x86-64
 * instruction bytes at ring 3 with given RAX/RBX/RCX/RDX/RSI and RFLAGS and prints
 * the registers and RFLAGS afterwards (or "DE" when the CPU raised #DE).
 *
 * stdin, one case per line:  <hexbytes> <rax> <rbx> <rcx> <rdx> <rsi> <rflags>  (hex, no 0x)
 * stdout, one line per case: <rax> <rbx> <rcx> <rdx> <rsi> <rflags>  or  DE
 * Built and driven by tests/oracle/gen_vectors.ts (see tests/oracle/native_flags.sh).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct { uint64_t rax, rbx, rcx, rdx, rsi, rflags; } regs_t;

/* void run(regs_t *r): loads the registers, runs the bytes copied at PATCH, stores them back. */
static const uint8_t prologue[] = {
  0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57, /* push rbx rbp r12-r15 */
  0x49, 0x89, 0xff,                                           /* mov r15, rdi */
  0x41, 0xff, 0x77, 0x28, 0x9d,                               /* push [r15+40]; popfq */
  0x49, 0x8b, 0x07,                                           /* mov rax, [r15] */
  0x49, 0x8b, 0x5f, 0x08,                                     /* mov rbx, [r15+8] */
  0x49, 0x8b, 0x4f, 0x10,                                     /* mov rcx, [r15+16] */
  0x49, 0x8b, 0x57, 0x18,                                     /* mov rdx, [r15+24] */
  0x49, 0x8b, 0x77, 0x20,                                     /* mov rsi, [r15+32] */
};
static const uint8_t epilogue[] = {
  0x9c, 0x41, 0x8f, 0x47, 0x28,                               /* pushfq; pop [r15+40] */
  0x49, 0x89, 0x07, 0x49, 0x89, 0x5f, 0x08, 0x49, 0x89, 0x4f, 0x10,
  0x49, 0x89, 0x57, 0x18, 0x49, 0x89, 0x77, 0x20,             /* mov [r15+..], rax rbx rcx rdx rsi */
  0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, /* pop r15-r12 rbp rbx */
  0xc3,
};

static sigjmp_buf jb;
static void on_fpe(int sig) { (void)sig; siglongjmp(jb, 1); }

int main(void) {
  uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) { perror("mmap"); return 1; }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fpe;
  sa.sa_flags = SA_NODEFER;
  sigaction(SIGFPE, &sa, NULL);
  char hex[64];
  regs_t r;
  while (scanf("%63s %lx %lx %lx %lx %lx %lx", hex, &r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rflags) == 7) {
    size_t n = 0;
    memcpy(page, prologue, sizeof prologue);
    n = sizeof prologue;
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
      unsigned v;
      sscanf(hex + i, "%2x", &v);
      page[n++] = (uint8_t)v;
    }
    memcpy(page + n, epilogue, sizeof epilogue);
    __builtin___clear_cache((char *)page, (char *)page + 4096);
    volatile regs_t io = r;
    if (sigsetjmp(jb, 1) == 0) {
      ((void (*)(volatile regs_t *))page)(&io);
      printf("%lx %lx %lx %lx %lx %lx\n", io.rax, io.rbx, io.rcx, io.rdx, io.rsi, io.rflags);
    } else {
      printf("DE\n");
    }
  }
  return 0;
}
