/* The C half of the FFI comparison (bench/ffi.ts): the same four operations the typed kvm layer
 * makes, in plain ioctls. Built by the benchmark with the machine's gcc into a temporary directory.
 * Prints one line per op: "name median_ns min_ns". Usage: ffi ROUNDS NULL_N VM_N SLOT_N RUN_N */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* 6.8+ uAPI, absent from older installed headers */
struct region2 { uint32_t slot, flags; uint64_t gpa, size, uaddr, gmem_offset; uint32_t gmem_fd, pad1; uint64_t pad2[14]; };
#define SET_REGION2 _IOW(KVMIO, 0x49, struct region2)

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static void die(const char *w) { perror(w); exit(1); }
static int rounds;
static void report(const char *name, double *v) {
	double min = v[0];
	for (int i = 1; i < rounds; i++) if (v[i] < min) min = v[i];
	qsort(v, rounds, sizeof *v, cmp);
	printf("%s %.1f %.1f\n", name, v[rounds / 2], min);
}
#define BENCH(name, N, body) do { double v[64]; for (int r = 0; r < rounds; r++) { double t = now(); \
	for (long i = 0; i < (N); i++) { body; } v[r] = (now() - t) / (N); } report(name, v); } while (0)

int main(int argc, char **argv) {
	if (argc < 6) return 2;
	rounds = atoi(argv[1]);
	long nnull = atol(argv[2]), nvm = atol(argv[3]), nslot = atol(argv[4]), nrun = atol(argv[5]);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) die("/dev/kvm");
	BENCH("null", nnull, ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
	BENCH("vm", nvm, close(ioctl(kvm, KVM_CREATE_VM, 0)));
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	char *mem = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct region2 add = { .slot = 1, .gpa = 1ull << 32, .size = 2 << 20, .uaddr = (uint64_t)mem }, del = add;
	del.size = 0;
	BENCH("slot", nslot, { if (ioctl(vm, SET_REGION2, &add) || ioctl(vm, SET_REGION2, &del)) die("region2"); });
	/* real mode at 0: N copies of "mov dx, 0x10; mov eax, 1; out dx, eax" (3 instructions per exit,
	 * as the guest programs of src/guest/x86.ts), then jmp back to 0 */
	struct kvm_userspace_memory_region low = { .slot = 0, .memory_size = 2 << 20, .userspace_addr = (uint64_t)mem };
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &low)) die("region");
	unsigned char *p = (unsigned char *)mem;
	for (int k = 0; k < 1000; k++) { *p++ = 0xba; *p++ = 0x10; *p++ = 0x00; *p++ = 0x66; *p++ = 0xb8; *p++ = 1; *p++ = 0; *p++ = 0; *p++ = 0; *p++ = 0x66; *p++ = 0xef; }
	long back = -(long)((p + 3) - (unsigned char *)mem);
	*p++ = 0xe9; *p++ = back & 0xff; *p++ = (back >> 8) & 0xff;
	int vc = ioctl(vm, KVM_CREATE_VCPU, 0);
	struct kvm_sregs s;
	if (ioctl(vc, KVM_GET_SREGS, &s)) die("sregs");
	s.cs.base = 0; s.cs.selector = 0;
	if (ioctl(vc, KVM_SET_SREGS, &s)) die("sregs");
	struct kvm_regs rg = { .rip = 0, .rflags = 2 };
	if (ioctl(vc, KVM_SET_REGS, &rg)) die("regs");
	struct kvm_run *run = mmap(NULL, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE, MAP_SHARED, vc, 0);
	BENCH("run", nrun, { if (ioctl(vc, KVM_RUN, 0) || run->exit_reason != KVM_EXIT_IO) die("run"); });
	return 0;
}
