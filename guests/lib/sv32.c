#include "sv32.h"
#include "runtime.h"

static uint32_t root[1024] __attribute__((aligned(4096)));
static uint32_t pool[SV32_TABLES_MAX][1024] __attribute__((aligned(4096)));
static int pool_used;

static uint32_t make_pte(uint32_t pa, uint32_t flags) { return ((pa >> 12) << 10) | (flags & 0x3ffu); }
static uint32_t vpn1(uint32_t va) { return va >> 22; }
static uint32_t vpn0(uint32_t va) { return (va >> 12) & 0x3ffu; }
static int is_leaf(uint32_t pte) { return (pte & (PTE_R | PTE_W | PTE_X)) != 0; }

void sv32_reset(void) {
    memset(root, 0, sizeof root);
    memset(pool, 0, sizeof pool);
    pool_used = 0;
}

uint32_t sv32_satp(void) { return SATP_MODE_SV32 | ((uint32_t)(uintptr_t)root >> 12); }

volatile uint32_t *sv32_map_megapage(uint32_t va, uint32_t pa, uint32_t flags) {
    volatile uint32_t *pte = &root[vpn1(va)];
    *pte = make_pte(pa, flags | PTE_V);
    return pte;
}

volatile uint32_t *sv32_map_page(uint32_t va, uint32_t pa, uint32_t flags) {
    volatile uint32_t *entry = &root[vpn1(va)];
    if ((*entry & PTE_V) == 0) {
        if (pool_used == SV32_TABLES_MAX) {
            rt_printf("sv32: out of page tables\n");
            rt_exit(96);
        }
        *entry = make_pte((uint32_t)(uintptr_t)pool[pool_used++], PTE_V);
    } else if (is_leaf(*entry)) {
        rt_printf("sv32: 0x%x is inside a superpage\n", va);
        rt_exit(96);
    }
    uint32_t *table = (uint32_t *)(uintptr_t)sv32_pte_address(*entry);
    volatile uint32_t *pte = &table[vpn0(va)];
    *pte = make_pte(pa, flags | PTE_V);
    return pte;
}

volatile uint32_t *sv32_leaf(uint32_t va) {
    volatile uint32_t *entry = &root[vpn1(va)];
    if ((*entry & PTE_V) == 0) return 0;
    if (is_leaf(*entry)) return entry;
    uint32_t *table = (uint32_t *)(uintptr_t)sv32_pte_address(*entry);
    volatile uint32_t *pte = &table[vpn0(va)];
    return (*pte & PTE_V) ? pte : 0;
}
