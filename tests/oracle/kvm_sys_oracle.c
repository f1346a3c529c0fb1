// Real-KVM oracle for a few system behaviours of tests/x86_sys_*_test.ts:
// VMMCALL results (kvm_emulate_hypercall) and the INT3 / KVM_GUESTDBG_USE_SW_BP
// debug exit. 32-bit flat protected mode, paging off, code at 0x1000.
// On this machine's software-nested (PVM) host the answers are not usable: INT3 under
// USE_SW_BP ends in KVM_EXIT_INTERNAL_ERROR (exit 17) at CPL 0, and VMMCALL never
// returns from KVM_RUN (the 5 s alarm fires). On a VMX/SVM host it prints the values
// the tests expect (x86_sys_misc_test.ts / x86_sys_debug_test.ts).
// Build: gcc -O1 -o /tmp/kvm_sys_oracle tests/oracle/kvm_sys_oracle.c ; run: /tmp/kvm_sys_oracle
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int kvm;
static void die(const char *m) { perror(m); exit(1); }
static void on_alarm(int s) { (void)s; fprintf(stderr, "KVM_RUN timed out\n"); exit(2); }

struct vcpu { int vm, fd; struct kvm_run *run; uint8_t *mem; };

static struct vcpu setup(const uint8_t *code, size_t n) {
  struct vcpu v;
  v.vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (v.vm < 0) die("KVM_CREATE_VM");
  v.mem = mmap(0, 0x100000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  struct kvm_userspace_memory_region r = { .slot = 0, .guest_phys_addr = 0, .memory_size = 0x100000,
                                           .userspace_addr = (uint64_t)v.mem };
  if (ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) die("KVM_SET_USER_MEMORY_REGION");
  memcpy(v.mem + 0x1000, code, n);
  v.fd = ioctl(v.vm, KVM_CREATE_VCPU, 0);
  if (v.fd < 0) die("KVM_CREATE_VCPU");
  int sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  v.run = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_SHARED, v.fd, 0);
  struct kvm_sregs s;
  ioctl(v.fd, KVM_GET_SREGS, &s);
  struct kvm_segment cs = { .base = 0, .limit = 0xffffffff, .selector = 8, .type = 0xb, .present = 1, .dpl = 0,
                            .db = 1, .s = 1, .l = 0, .g = 1 };
  struct kvm_segment ds = cs;
  ds.type = 3; ds.selector = 0x10;
  s.cs = cs; s.ds = s.es = s.fs = s.gs = s.ss = ds;
  s.cr0 = 0x11;
  ioctl(v.fd, KVM_SET_SREGS, &s);
  struct kvm_regs g = { .rip = 0x1000, .rsp = 0x8000, .rflags = 2 };
  ioctl(v.fd, KVM_SET_REGS, &g);
  return v;
}

static void run(struct vcpu *v) {
  alarm(5);
  if (ioctl(v->fd, KVM_RUN, 0) < 0) die("KVM_RUN");
  alarm(0);
}

static void hypercall(uint32_t nr, uint32_t esi) {
  // mov eax, nr; mov esi, esi; vmmcall; hlt
  uint8_t code[] = { 0xb8, nr, nr >> 8, nr >> 16, nr >> 24, 0xbe, esi, esi >> 8, esi >> 16, esi >> 24,
                     0x0f, 0x01, 0xd9, 0xf4 };
  struct vcpu v = setup(code, sizeof code);
  run(&v);
  struct kvm_regs g;
  ioctl(v.fd, KVM_GET_REGS, &g);
  printf("vmmcall nr=%u esi=0x%x: exit %u rax=0x%llx rip=0x%llx\n", nr, esi, v.run->exit_reason,
         (unsigned long long)g.rax, (unsigned long long)g.rip);
  close(v.fd); close(v.vm);
}

static void int3_swbp(void) {
  uint8_t code[] = { 0x90, 0xcc, 0xf4 }; // nop; int3; hlt
  struct vcpu v = setup(code, sizeof code);
  struct kvm_guest_debug d = { .control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP };
  if (ioctl(v.fd, KVM_SET_GUEST_DEBUG, &d) < 0) die("KVM_SET_GUEST_DEBUG");
  run(&v);
  struct kvm_regs g;
  ioctl(v.fd, KVM_GET_REGS, &g);
  printf("int3 sw bp: exit %u exception %u pc 0x%llx dr6 0x%llx dr7 0x%llx rip 0x%llx\n", v.run->exit_reason,
         v.run->debug.arch.exception, (unsigned long long)v.run->debug.arch.pc,
         (unsigned long long)v.run->debug.arch.dr6, (unsigned long long)v.run->debug.arch.dr7,
         (unsigned long long)g.rip);
  close(v.fd); close(v.vm);
}

int main(void) {
  signal(SIGALRM, on_alarm);
  kvm = open("/dev/kvm", O_RDWR);
  if (kvm < 0) die("/dev/kvm");
  int3_swbp();
  hypercall(0x1234, 0);  // unknown → -KVM_ENOSYS
  hypercall(1, 0);       // KVM_HC_VAPIC_POLL_IRQ
  hypercall(5, 0);       // KVM_HC_KICK_CPU
  hypercall(9, 0);       // KVM_HC_CLOCK_PAIRING
  hypercall(10, 0);      // KVM_HC_SEND_IPI, ICR 0
  hypercall(10, 0x800);  // KVM_HC_SEND_IPI, ICR with APIC_DEST_LOGICAL
  hypercall(11, 0);      // KVM_HC_SCHED_YIELD
  hypercall(12, 0);      // KVM_HC_MAP_GPA_RANGE without KVM_CAP_EXIT_HYPERCALL
  return 0;
}
