/* A tiny Sv32 page-table builder for guest tests (privileged spec, section "Sv32").
 *
 * One root table and a small pool of second-level tables, all in the guest's .bss (so
 * physical addresses equal the C pointers: build tables in M-mode or under an identity
 * mapping). Nothing is validated: a test may write any PTE it likes, misaligned
 * superpages and reserved permission combinations included. */
#ifndef UNDERSTUDY_SV32_H
#define UNDERSTUDY_SV32_H

#include <stdint.h>

#define PTE_V (1u << 0)
#define PTE_R (1u << 1)
#define PTE_W (1u << 2)
#define PTE_X (1u << 3)
#define PTE_U (1u << 4)
#define PTE_G (1u << 5)
#define PTE_A (1u << 6)
#define PTE_D (1u << 7)

#define SV32_PAGE_BYTES      4096u
#define SV32_MEGAPAGE_BYTES  (4096u * 1024u)
#define SV32_TABLES_MAX      8  /* second-level tables in the pool */
#define SATP_MODE_SV32       (1u << 31)

/* Empties the root table and the pool. */
void sv32_reset(void);
/* The satp value selecting Sv32 with the root table (ASID 0). */
uint32_t sv32_satp(void);
/* Writes a level-1 leaf: va's 4 MiB region maps to pa (which should be 4 MiB aligned, or
 * the PTE is a misaligned superpage). Returns the PTE. */
volatile uint32_t *sv32_map_megapage(uint32_t va, uint32_t pa, uint32_t flags);
/* Writes a level-0 leaf for va's 4 KiB page, taking a second-level table from the pool if
 * va's level-1 entry has none. Returns the PTE (exits with code 96 if the pool is empty,
 * or if the level-1 entry is a leaf). */
volatile uint32_t *sv32_map_page(uint32_t va, uint32_t pa, uint32_t flags);
/* The leaf PTE for va (level 1 or 0), or 0 when the walk meets an invalid entry. */
volatile uint32_t *sv32_leaf(uint32_t va);
/* A PTE's flag bits and the physical address it maps (its PPN << 12). */
static inline uint32_t sv32_pte_flags(uint32_t pte) { return pte & 0x3ffu; }
static inline uint32_t sv32_pte_address(uint32_t pte) { return (pte >> 10) << 12; }

static inline void sfence_vma_all(void) { __asm__ volatile("sfence.vma zero, zero" ::: "memory"); }
static inline void sfence_vma(uint32_t va) { __asm__ volatile("sfence.vma %0, zero" ::"r"(va) : "memory"); }

#endif
