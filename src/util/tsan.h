/*
 * tsan.h - the engine reads region memory that host threads write; the
 * order between the two is enforced by write protection (the kernel makes a
 * writer wait, or traps it, until the page is saved), which ThreadSanitizer
 * cannot see.  Those reads, and only those, are hidden from it.
 */
#ifndef BGSNAP_TSAN_H
#define BGSNAP_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define BGSNAP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BGSNAP_TSAN 1
#endif
#endif

#ifdef BGSNAP_TSAN
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define REGION_READ_BEGIN() __tsan_ignore_thread_begin()
#define REGION_READ_END() __tsan_ignore_thread_end()
#else
#define REGION_READ_BEGIN() ((void)0)
#define REGION_READ_END() ((void)0)
#endif

#endif
