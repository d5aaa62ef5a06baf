// clone3 with CLONE_VM and a fresh stack. glibc 2.36 exports no clone3() wrapper, and a child on a
// new stack cannot return through C code, so the child side is a few instructions of assembly that
// call fn(arg) and then exit — the same shape as glibc's sysdeps/unix/sysv/linux/x86_64/clone3.S.
#pragma once

#include <linux/sched.h>
#include <sys/syscall.h>

#include <cstddef>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

namespace jw {

#if defined(__x86_64__)
#define JW_HAVE_CLONE3_VM 1

// Returns the child's pid (parent) or -errno. The child runs fn(arg) on args->stack and exits with
// its return value; it never returns here.
static inline long clone3_vm(struct clone_args* args, size_t size, int (*fn)(void*), void* arg) {
  long ret;
  register void* child_fn asm("r8") = reinterpret_cast<void*>(fn);
  register void* child_arg asm("r9") = arg;
  asm volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      // Child: new stack (16-byte aligned by the kernel from stack + stack_size), no frame to return to.
      "xor %%ebp, %%ebp\n\t"
      "mov %%r9, %%rdi\n\t"
      "call *%%r8\n\t"
      "mov %%eax, %%edi\n\t"
      "mov %[sys_exit], %%eax\n\t"
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "0"(static_cast<long>(SYS_clone3)), "D"(args), "S"(size), "r"(child_fn), "r"(child_arg),
        [sys_exit] "i"(SYS_exit)
      : "rcx", "r11", "memory");
  return ret;
}
#else
#define JW_HAVE_CLONE3_VM 0
#endif

}  // namespace jw
