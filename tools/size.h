/* size.h - sizes on the command line, shared by bgsnap and bgsnap-vm. */
#ifndef BGSNAP_SIZE_H
#define BGSNAP_SIZE_H

#include <stdint.h>

/* Parses "512M", "2G", "4K", "1GiB", "4096" (binary units); 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);

#endif
