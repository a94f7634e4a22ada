/*
 * understudy-sbi: the smallest M-mode firmware that boots Linux on QEMU's `virt` board (and
 * on understudy's copy of it) with one hart.
 *
 * It prepares the machine the way the RISC-V SBI specification and Linux's boot protocol
 * expect (Documentation/riscv/boot.rst: "a0 = hartid, a1 = DTB physical address", S-mode,
 * satp = 0), then answers the kernel's ecalls:
 *   BASE (0x10)            spec version, implementation, probing, machine ids
 *   TIME (0x54494D45)      set_timer through the CLINT
 *   SRST (0x53525354)      shutdown and reboot through the sifive,test0 device
 *   IPI (0x735049), RFENCE (0x52464E43)
 *                          answered for the only hart, so a probe never fails
 *   legacy v0.1 calls 0..8 console putchar/getchar (for earlycon=sbi), timer, shutdown, ...
 * Any trap it did not ask for stops the machine with a message and a failure status: the
 * firmware never loops silently.
 *
 * Why not OpenSBI: Debian ships it for rv64 only, so QEMU's riscv32 board has no default
 * firmware here; and one small firmware run on both QEMU and understudy keeps the two runs
 * comparable instruction for instruction.
 */
#include <stdint.h>

/* ---- Board addresses (QEMU virt) ------------------------------------------------------- */
#define UART_BASE 0x10000000u
#define UART_LSR 5u                 /* line status register */
#define UART_LSR_DATA_READY 0x01u
#define UART_LSR_THR_EMPTY 0x20u
#define CLINT_BASE 0x02000000u
#define CLINT_MTIMECMP (CLINT_BASE + 0x4000u)  /* hart 0 */
#define TEST_DEVICE_BASE 0x00100000u
#define TEST_DEVICE_PASS 0x5555u    /* power off, exit status 0 */
#define TEST_DEVICE_FAIL 0x3333u    /* power off, exit status in bits 31:16 */
#define TEST_DEVICE_RESET 0x7777u

#define BOOT_ROM_BASE 0x00001000u  /* QEMU's reset vector ROM */
#define BOOT_ROM_END 0x00010000u
#define RAM_BASE 0x80000000u

/* The kernel's default entry when no fw_dynamic_info is passed: QEMU puts an rv32 Image at
 * the first 4 MiB boundary after the firmware. */
#define KERNEL_ENTRY_DEFAULT 0x80400000u

/* The RISC-V Linux Image header (Documentation/riscv/boot-image-header.rst): a 32-bit "magic2"
 * at byte 0x38 reads "RSC\x05". Checking it turns a missing or corrupt kernel into a clear
 * error instead of S-mode code faulting forever (its faults are delegated to it). */
#define IMAGE_MAGIC2_OFFSET 0x38u
#define IMAGE_MAGIC2 0x05435352u

/* ---- QEMU's fw_dynamic_info (the same record OpenSBI's fw_dynamic reads) ---------------- */
#define FW_DYNAMIC_INFO_MAGIC 0x4942534fu   /* "OSBI" */
#define FW_DYNAMIC_INFO_NEXT_MODE_S 1u
struct fw_dynamic_info {
    uint32_t magic;
    uint32_t version;
    uint32_t next_addr;
    uint32_t next_mode;
    uint32_t options;
    uint32_t boot_hart;
};

/* ---- CSR bits ---------------------------------------------------------------------------- */
#define MSTATUS_MPP_MASK (3u << 11)
#define MSTATUS_MPP_S (1u << 11)
#define MIP_SSIP (1u << 1)
#define MIP_STIP (1u << 5)
#define MIP_MTIP (1u << 7)
#define MIP_SEIP (1u << 9)
#define MCAUSE_INTERRUPT 0x80000000u
#define IRQ_M_TIMER 7u
#define CAUSE_ECALL_FROM_S 9u
/* Exceptions the kernel handles itself: misaligned/access faults, illegal instruction,
 * breakpoint, ecall from U, page faults. */
#define DELEGATED_EXCEPTIONS                                                                   \
    ((1u << 0) | (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) |    \
     (1u << 7) | (1u << 8) | (1u << 12) | (1u << 13) | (1u << 15))
#define DELEGATED_INTERRUPTS (MIP_SSIP | MIP_STIP | MIP_SEIP)
#define MCOUNTEREN_CY_TM_IR 0x7u
#define MENVCFGH_STCE (1u << 31)    /* lets S-mode use stimecmp when the CPU has Sstc */

/* PMP: entry 0 hides the firmware's 64 KiB from S/U mode, entry 1 opens everything else. */
#define PMP_R 0x01u
#define PMP_W 0x02u
#define PMP_X 0x04u
#define PMP_NAPOT 0x18u
#define FIRMWARE_REGION_BYTES 0x10000u
#define PMP_NAPOT_ADDR(base, bytes) (((base) >> 2) | (((bytes) >> 3) - 1u))
#define PMP_ADDR_EVERYTHING 0xffffffffu

/* ---- SBI (RISC-V Supervisor Binary Interface spec v1.0) -------------------------------- */
#define SBI_SPEC_VERSION_1_0 0x01000000u
/* Not a registered implementation id: the spec's table has none for us. */
#define SBI_IMPL_ID_UNDERSTUDY 0x7564u
#define SBI_IMPL_VERSION 1u
#define SBI_SUCCESS 0
#define SBI_ERR_NOT_SUPPORTED (-2)
#define SBI_ERR_INVALID_PARAM (-3)

#define EXT_LEGACY_SET_TIMER 0x00u
#define EXT_LEGACY_PUTCHAR 0x01u
#define EXT_LEGACY_GETCHAR 0x02u
#define EXT_LEGACY_CLEAR_IPI 0x03u
#define EXT_LEGACY_SEND_IPI 0x04u
#define EXT_LEGACY_FENCE_I 0x05u
#define EXT_LEGACY_SFENCE_VMA 0x06u
#define EXT_LEGACY_SFENCE_VMA_ASID 0x07u
#define EXT_LEGACY_SHUTDOWN 0x08u
#define EXT_BASE 0x10u
#define EXT_TIME 0x54494D45u
#define EXT_IPI 0x735049u
#define EXT_RFENCE 0x52464E43u
#define EXT_SRST 0x53525354u

#define SRST_TYPE_SHUTDOWN 0u
#define SRST_TYPE_COLD_REBOOT 1u
#define SRST_TYPE_WARM_REBOOT 2u
#define SRST_REASON_SYSTEM_FAILURE 1u

/* Register indices in the trap frame (x0..x31 by number). */
enum { REG_A0 = 10, REG_A1 = 11, REG_A2 = 12, REG_A6 = 16, REG_A7 = 17, REG_COUNT = 32 };

struct trap_frame {
    uint32_t x[REG_COUNT];
};

/* From entry.S and link.ld. */
extern int try_write_pmpcfg0(uint32_t value);
extern int try_write_pmpaddr0(uint32_t value);
extern int try_write_pmpaddr1(uint32_t value);
extern int try_write_mcounteren(uint32_t value);
extern int try_write_menvcfgh(uint32_t value);
extern char firmware_start[], firmware_end[];

#define csr_read(csr)                                                                         \
    ({                                                                                        \
        uint32_t value_;                                                                      \
        __asm__ volatile("csrr %0, " #csr : "=r"(value_));                                    \
        value_;                                                                               \
    })
#define csr_write(csr, value) __asm__ volatile("csrw " #csr ", %0" ::"rK"(value))
#define csr_set(csr, bits) __asm__ volatile("csrs " #csr ", %0" ::"rK"(bits))
#define csr_clear(csr, bits) __asm__ volatile("csrc " #csr ", %0" ::"rK"(bits))

static inline void mmio_write32(uint32_t address, uint32_t value) {
    *(volatile uint32_t *)address = value;
}
static inline void mmio_write8(uint32_t address, uint8_t value) {
    *(volatile uint8_t *)address = value;
}
static inline uint8_t mmio_read8(uint32_t address) {
    return *(volatile uint8_t *)address;
}

/* ---- Console ------------------------------------------------------------------------------ */
static void console_putchar(char c) {
    while ((mmio_read8(UART_BASE + UART_LSR) & UART_LSR_THR_EMPTY) == 0) {
    }
    mmio_write8(UART_BASE, (uint8_t)c);
}

static int console_getchar(void) {
    if ((mmio_read8(UART_BASE + UART_LSR) & UART_LSR_DATA_READY) == 0) return -1;
    return mmio_read8(UART_BASE);
}

static void console_puts(const char *text) {
    for (; *text != '\0'; text++) {
        if (*text == '\n') console_putchar('\r');
        console_putchar(*text);
    }
}

static void console_put_hex(uint32_t value) {
    console_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4) console_putchar("0123456789abcdef"[(value >> shift) & 0xfu]);
}

/* ---- Power -------------------------------------------------------------------------------- */
static __attribute__((noreturn)) void power_request(uint32_t command) {
    mmio_write32(TEST_DEVICE_BASE, command);
    /* A board without the test device ends up here: stop doing anything. */
    for (;;) __asm__ volatile("wfi");
}

/* Exit statuses through the test device (QEMU exits with them): */
#define EXIT_STATUS_SYSTEM_FAILURE 1u  /* SRST shutdown with reason "system failure" */
#define EXIT_STATUS_UNEXPECTED_TRAP 2u
#define EXIT_STATUS_BAD_BOOT 3u        /* no kernel image, firmware too big */

static __attribute__((noreturn)) void fail_trap(uint32_t cause, uint32_t epc, uint32_t tval) {
    console_puts("\nunderstudy-sbi: unexpected trap: mcause=");
    console_put_hex(cause);
    console_puts(" mepc=");
    console_put_hex(epc);
    console_puts(" mtval=");
    console_put_hex(tval);
    console_puts("\n");
    power_request(TEST_DEVICE_FAIL | (EXIT_STATUS_UNEXPECTED_TRAP << 16));
}

static __attribute__((noreturn)) void fail_boot(const char *what, uint32_t value) {
    console_puts("understudy-sbi: ");
    console_puts(what);
    console_puts(" (");
    console_put_hex(value);
    console_puts(")\n");
    power_request(TEST_DEVICE_FAIL | (EXIT_STATUS_BAD_BOOT << 16));
}

/* ---- Timer -------------------------------------------------------------------------------- */
static void timer_set(uint32_t low, uint32_t high) {
    /* Raise the high word first so the comparator never passes through a value in the past. */
    mmio_write32(CLINT_MTIMECMP + 4, 0xffffffffu);
    mmio_write32(CLINT_MTIMECMP, low);
    mmio_write32(CLINT_MTIMECMP + 4, high);
    csr_clear(mip, MIP_STIP);
    csr_set(mie, MIP_MTIP);
}

/* The M-mode timer fires once per set_timer: hand it to S-mode as STIP and mask it until the
 * kernel arms the next deadline. */
static void timer_interrupt(void) {
    csr_clear(mie, MIP_MTIP);
    csr_set(mip, MIP_STIP);
}

/* ---- SBI calls ---------------------------------------------------------------------------- */
struct sbi_result {
    int32_t error;
    uint32_t value;
};

static int extension_present(uint32_t extension) {
    switch (extension) {
    case EXT_BASE:
    case EXT_TIME:
    case EXT_IPI:
    case EXT_RFENCE:
    case EXT_SRST:
        return 1;
    default:
        return extension <= EXT_LEGACY_SHUTDOWN;
    }
}

static struct sbi_result sbi_base(uint32_t function, uint32_t argument) {
    switch (function) {
    case 0: return (struct sbi_result){SBI_SUCCESS, SBI_SPEC_VERSION_1_0};
    case 1: return (struct sbi_result){SBI_SUCCESS, SBI_IMPL_ID_UNDERSTUDY};
    case 2: return (struct sbi_result){SBI_SUCCESS, SBI_IMPL_VERSION};
    case 3: return (struct sbi_result){SBI_SUCCESS, (uint32_t)extension_present(argument)};
    case 4: return (struct sbi_result){SBI_SUCCESS, csr_read(mvendorid)};
    case 5: return (struct sbi_result){SBI_SUCCESS, csr_read(marchid)};
    case 6: return (struct sbi_result){SBI_SUCCESS, csr_read(mimpid)};
    default: return (struct sbi_result){SBI_ERR_NOT_SUPPORTED, 0};
    }
}

static struct sbi_result sbi_system_reset(uint32_t type, uint32_t reason) {
    switch (type) {
    case SRST_TYPE_SHUTDOWN:
        power_request(reason == SRST_REASON_SYSTEM_FAILURE ? (TEST_DEVICE_FAIL | (EXIT_STATUS_SYSTEM_FAILURE << 16))
                                                          : TEST_DEVICE_PASS);
    case SRST_TYPE_COLD_REBOOT:
    case SRST_TYPE_WARM_REBOOT:
        power_request(TEST_DEVICE_RESET);
    default:
        return (struct sbi_result){SBI_ERR_INVALID_PARAM, 0};
    }
}

/* With one hart, "every hart in the mask" can only be this one. */
static struct sbi_result sbi_rfence(uint32_t function) {
    if (function == 0) __asm__ volatile("fence.i" ::: "memory");
    else __asm__ volatile("sfence.vma" ::: "memory");
    return (struct sbi_result){SBI_SUCCESS, 0};
}

#ifdef SBI_TRACE
/* Debug builds print the first use of each (extension, function) pair. */
#define TRACE_SLOTS 32
static uint32_t traced_extension[TRACE_SLOTS], traced_function[TRACE_SLOTS];
static uint32_t traced_count;
static void trace_call(uint32_t extension, uint32_t function) {
    for (uint32_t i = 0; i < traced_count; i++)
        if (traced_extension[i] == extension && traced_function[i] == function) return;
    if (traced_count == TRACE_SLOTS) return;
    traced_extension[traced_count] = extension;
    traced_function[traced_count] = function;
    traced_count++;
    if (extension == EXT_LEGACY_PUTCHAR) return;  /* printing now would interleave the text */
    console_puts("[understudy-sbi: first call ext=");
    console_put_hex(extension);
    console_puts(" fid=");
    console_put_hex(function);
    console_puts("]\n");
}
#endif

static void handle_ecall(struct trap_frame *frame) {
    uint32_t extension = frame->x[REG_A7], function = frame->x[REG_A6];
    uint32_t arg0 = frame->x[REG_A0], arg1 = frame->x[REG_A1];
#ifdef SBI_TRACE
    trace_call(extension, extension <= EXT_LEGACY_SHUTDOWN ? 0 : function);
#endif
    struct sbi_result result;
    /* Legacy (v0.1) calls return a single value in a0 and leave a1 alone. */
    switch (extension) {
    case EXT_LEGACY_SET_TIMER: timer_set(arg0, arg1); frame->x[REG_A0] = 0; return;
    case EXT_LEGACY_PUTCHAR: console_putchar((char)arg0); frame->x[REG_A0] = 0; return;
    case EXT_LEGACY_GETCHAR: frame->x[REG_A0] = (uint32_t)console_getchar(); return;
    case EXT_LEGACY_CLEAR_IPI: csr_clear(mip, MIP_SSIP); frame->x[REG_A0] = 0; return;
    case EXT_LEGACY_SEND_IPI: csr_set(mip, MIP_SSIP); frame->x[REG_A0] = 0; return;
    case EXT_LEGACY_FENCE_I: sbi_rfence(0); frame->x[REG_A0] = 0; return;
    case EXT_LEGACY_SFENCE_VMA:
    case EXT_LEGACY_SFENCE_VMA_ASID: sbi_rfence(1); frame->x[REG_A0] = 0; return;
    case EXT_LEGACY_SHUTDOWN: power_request(TEST_DEVICE_PASS);
    case EXT_BASE: result = sbi_base(function, arg0); break;
    case EXT_TIME:
        if (function == 0) {
            timer_set(arg0, arg1);
            result = (struct sbi_result){SBI_SUCCESS, 0};
        } else {
            result = (struct sbi_result){SBI_ERR_NOT_SUPPORTED, 0};
        }
        break;
    case EXT_IPI:
        if (function == 0) csr_set(mip, MIP_SSIP);
        result = (struct sbi_result){function == 0 ? SBI_SUCCESS : SBI_ERR_NOT_SUPPORTED, 0};
        break;
    case EXT_RFENCE:
        result = function <= 6 ? sbi_rfence(function) : (struct sbi_result){SBI_ERR_NOT_SUPPORTED, 0};
        break;
    case EXT_SRST:
        result = function == 0 ? sbi_system_reset(arg0, arg1) : (struct sbi_result){SBI_ERR_NOT_SUPPORTED, 0};
        break;
    default: result = (struct sbi_result){SBI_ERR_NOT_SUPPORTED, 0}; break;
    }
    frame->x[REG_A0] = (uint32_t)result.error;
    frame->x[REG_A1] = result.value;
}

void handle_trap(struct trap_frame *frame) {
    uint32_t cause = csr_read(mcause);
    if (cause == (MCAUSE_INTERRUPT | IRQ_M_TIMER)) {
        timer_interrupt();
        return;
    }
    if (cause == CAUSE_ECALL_FROM_S) {
        handle_ecall(frame);
        csr_write(mepc, csr_read(mepc) + 4);
        return;
    }
    fail_trap(cause, csr_read(mepc), csr_read(mtval));
}

/* ---- Device tree: reserve the firmware's memory ------------------------------------------ */
/*
 * The kernel must not hand out the pages this firmware lives in. The flattened device tree
 * format (Devicetree Specification v0.4, chapter 5) has a memory reservation block: a list of
 * big-endian (address, size) pairs of 64 bits each, ended by a zero pair, which Linux reserves
 * at boot. We add one entry by moving everything after the list 16 bytes up and fixing the
 * header's offsets. The blob must have 16 free bytes after its end: QEMU places it with far
 * more room than that, and understudy's board must do the same.
 */
#define FDT_MAGIC 0xd00dfeedu
#define FDT_HEADER_TOTALSIZE 1
#define FDT_HEADER_OFF_DT_STRUCT 2
#define FDT_HEADER_OFF_DT_STRINGS 3
#define FDT_HEADER_OFF_MEM_RSVMAP 4
#define FDT_RESERVE_ENTRY_BYTES 16u
#define FDT_RESERVE_ENTRIES_MAX 64u

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void store_be32(uint8_t *p, uint32_t value) {
    p[0] = (uint8_t)(value >> 24);
    p[1] = (uint8_t)(value >> 16);
    p[2] = (uint8_t)(value >> 8);
    p[3] = (uint8_t)value;
}

static int fdt_add_reservation(uint32_t fdt_address, uint32_t base, uint32_t bytes) {
    uint8_t *fdt = (uint8_t *)fdt_address;
    /* Only RAM is safe to read: an M-mode access fault here would have no handler. */
    if (fdt_address < RAM_BASE || (fdt_address & 7u) != 0 || load_be32(fdt) != FDT_MAGIC) return 0;
    uint32_t total = load_be32(fdt + 4 * FDT_HEADER_TOTALSIZE);
    uint32_t entry = load_be32(fdt + 4 * FDT_HEADER_OFF_MEM_RSVMAP);
    for (uint32_t i = 0;; i++, entry += FDT_RESERVE_ENTRY_BYTES) {
        if (i == FDT_RESERVE_ENTRIES_MAX || entry + FDT_RESERVE_ENTRY_BYTES > total) return 0;
        int all_zero = 1;
        for (uint32_t k = 0; k < FDT_RESERVE_ENTRY_BYTES; k += 4) all_zero &= load_be32(fdt + entry + k) == 0;
        if (all_zero) break;
    }
    /* `entry` is the terminator: it becomes our entry and the terminator moves up. */
    for (uint32_t i = total; i > entry; i--) fdt[i - 1 + FDT_RESERVE_ENTRY_BYTES] = fdt[i - 1];
    store_be32(fdt + entry, 0);
    store_be32(fdt + entry + 4, base);
    store_be32(fdt + entry + 8, 0);
    store_be32(fdt + entry + 12, bytes);
    const int moved_fields[] = {FDT_HEADER_OFF_DT_STRUCT, FDT_HEADER_OFF_DT_STRINGS};
    for (unsigned i = 0; i < sizeof moved_fields / sizeof moved_fields[0]; i++) {
        uint8_t *field = fdt + 4 * moved_fields[i];
        if (load_be32(field) > entry) store_be32(field, load_be32(field) + FDT_RESERVE_ENTRY_BYTES);
    }
    store_be32(fdt + 4 * FDT_HEADER_TOTALSIZE, total + FDT_RESERVE_ENTRY_BYTES);
    return 1;
}

/* ---- Boot ----------------------------------------------------------------------------------- */
static void protect_memory(void) {
    uint32_t base = (uint32_t)firmware_start;
    /* Without PMP, S-mode already reaches all memory (and so can the firmware's region). */
    if (!try_write_pmpaddr0(PMP_NAPOT_ADDR(base, FIRMWARE_REGION_BYTES))) return;
    try_write_pmpaddr1(PMP_ADDR_EVERYTHING);
    try_write_pmpcfg0(((PMP_NAPOT | PMP_R | PMP_W | PMP_X) << 8) | PMP_NAPOT);
}

static uint32_t kernel_entry(uint32_t info_address) {
    const struct fw_dynamic_info *info = (const struct fw_dynamic_info *)info_address;
    /* Only read a2 where memory certainly exists: QEMU's boot ROM (where QEMU puts the record)
     * or RAM. A board without a record should pass a2 = 0. */
    int readable = (info_address >= BOOT_ROM_BASE && info_address < BOOT_ROM_END) || info_address >= RAM_BASE;
    if (readable && (info_address & 3u) == 0 && info->magic == FW_DYNAMIC_INFO_MAGIC &&
        info->next_mode == FW_DYNAMIC_INFO_NEXT_MODE_S)
        return info->next_addr;
    return KERNEL_ENTRY_DEFAULT;
}

void __attribute__((noreturn)) firmware_main(uint32_t hart_id, uint32_t fdt_address, uint32_t info_address) {
    uint32_t entry = kernel_entry(info_address);
    uint32_t firmware_bytes = (uint32_t)(firmware_end - firmware_start);
    if (firmware_bytes > FIRMWARE_REGION_BYTES) fail_boot("firmware larger than its region", firmware_bytes);

    if ((entry & 3u) != 0 || *(volatile uint32_t *)(entry + IMAGE_MAGIC2_OFFSET) != IMAGE_MAGIC2)
        fail_boot("no Linux Image at the kernel address: bad header magic", entry);

    protect_memory();
    csr_write(medeleg, DELEGATED_EXCEPTIONS);
    csr_write(mideleg, DELEGATED_INTERRUPTS);
    try_write_mcounteren(MCOUNTEREN_CY_TM_IR);
    try_write_menvcfgh(MENVCFGH_STCE);
    /* The kernel's first deadline comes through set_timer; until then no M-timer interrupt. */
    csr_write(mie, 0);
    csr_clear(mip, MIP_STIP | MIP_SSIP);

    int reserved = fdt_add_reservation(fdt_address, (uint32_t)firmware_start, FIRMWARE_REGION_BYTES);
    console_puts("understudy-sbi: kernel ");
    console_put_hex(entry);
    console_puts(", device tree ");
    console_put_hex(fdt_address);
    console_puts(reserved ? "\n" : " (not a device tree: firmware memory left unreserved)\n");

    /* Enter the kernel in S-mode with the MMU off: a0 = hart id, a1 = device tree. */
    uint32_t status = csr_read(mstatus);
    csr_write(mstatus, (status & ~MSTATUS_MPP_MASK) | MSTATUS_MPP_S);
    csr_write(mepc, entry);
    csr_write(satp, 0);
    register uint32_t a0 __asm__("a0") = hart_id;
    register uint32_t a1 __asm__("a1") = fdt_address;
    __asm__ volatile("mret" ::"r"(a0), "r"(a1));
    __builtin_unreachable();
}
