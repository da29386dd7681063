/* SPDX-License-Identifier: MIT */
#ifndef VHU_CPU_RELAX_H
#define VHU_CPU_RELAX_H

/*
 * One iteration of a spin-wait on memory another core writes: tell the CPU
 * we are spinning (x86 PAUSE, Arm YIELD), so the sibling hyperthread runs
 * and the loop does not flood the memory system. Elsewhere a compiler
 * barrier, so the loop re-reads memory.
 */
static inline void vhu_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

#endif
