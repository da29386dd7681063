/* SPDX-License-Identifier: MIT */
/*
 * What libvhu exports. The library is built with -fvisibility=hidden, so
 * only what a public header declares between VHU_API_BEGIN and
 * VHU_API_END is visible to programs: the vhu_ functions. Everything else
 * (the engine's per-format functions, the back-end's internals) stays
 * inside libvhu.so, where calls to it are direct, not through the PLT.
 */
#ifndef VHU_VISIBILITY_H
#define VHU_VISIBILITY_H

#if defined(__GNUC__)
#define VHU_API_BEGIN _Pragma("GCC visibility push(default)")
#define VHU_API_END _Pragma("GCC visibility pop")
#else
#define VHU_API_BEGIN
#define VHU_API_END
#endif

#endif
