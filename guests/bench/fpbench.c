/*
 * A floating-point workload for the FPU (issue 15): the n-body simulation of the five outer
 * planets in double precision (the Computer Language Benchmarks Game's), plus a single-
 * precision dot-product kernel. It prints the bits of the final energies as its checksum,
 * which must be the same on every correct machine (every operation is IEEE 754 in RNE and
 * the order of operations is fixed), and the instructions it took (minstret delta).
 *
 * Built with F and D (the Makefile's ARCH_FD). The FPU is off at reset: main turns it on
 * before calling anything that computes, in functions the compiler cannot inline into it.
 */
#include "runtime.h"

#define STEPS 20000
#define BODIES 5
#define PI 3.141592653589793
#define SOLAR_MASS (4 * PI * PI)
#define DAYS_PER_YEAR 365.24

struct body {
    double x, y, z, vx, vy, vz, mass;
};

static struct body bodies[BODIES] = {
    {0, 0, 0, 0, 0, 0, SOLAR_MASS},
    {4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01, 1.66007664274403694e-03 * DAYS_PER_YEAR,
     7.69901118419740425e-03 * DAYS_PER_YEAR, -6.90460016972063023e-05 * DAYS_PER_YEAR, 9.54791938424326609e-04 * SOLAR_MASS},
    {8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01, -2.76742510726862411e-03 * DAYS_PER_YEAR,
     4.99852801234917238e-03 * DAYS_PER_YEAR, 2.30417297573763929e-05 * DAYS_PER_YEAR, 2.85885980666130812e-04 * SOLAR_MASS},
    {1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01, 2.96460137564761618e-03 * DAYS_PER_YEAR,
     2.37847173959480950e-03 * DAYS_PER_YEAR, -2.96589568540237556e-05 * DAYS_PER_YEAR, 4.36624404335156298e-05 * SOLAR_MASS},
    {1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01, 2.68067772490389322e-03 * DAYS_PER_YEAR,
     1.62824170038242295e-03 * DAYS_PER_YEAR, -9.51592254519715870e-05 * DAYS_PER_YEAR, 5.15138902046611451e-05 * SOLAR_MASS},
};

static double square_root(double value) {
    double result;
    __asm__("fsqrt.d %0, %1" : "=f"(result) : "f"(value));
    return result;
}

static void offset_momentum(void) {
    double px = 0, py = 0, pz = 0;
    for (int i = 0; i < BODIES; i++) {
        px += bodies[i].vx * bodies[i].mass;
        py += bodies[i].vy * bodies[i].mass;
        pz += bodies[i].vz * bodies[i].mass;
    }
    bodies[0].vx = -px / SOLAR_MASS;
    bodies[0].vy = -py / SOLAR_MASS;
    bodies[0].vz = -pz / SOLAR_MASS;
}

static double energy(void) {
    double e = 0;
    for (int i = 0; i < BODIES; i++) {
        struct body *b = &bodies[i];
        e += 0.5 * b->mass * (b->vx * b->vx + b->vy * b->vy + b->vz * b->vz);
        for (int j = i + 1; j < BODIES; j++) {
            struct body *c = &bodies[j];
            double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
            e -= b->mass * c->mass / square_root(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

static void advance(double dt) {
    for (int i = 0; i < BODIES; i++) {
        struct body *b = &bodies[i];
        for (int j = i + 1; j < BODIES; j++) {
            struct body *c = &bodies[j];
            double dx = b->x - c->x, dy = b->y - c->y, dz = b->z - c->z;
            double distance2 = dx * dx + dy * dy + dz * dz;
            double magnitude = dt / (distance2 * square_root(distance2));
            b->vx -= dx * c->mass * magnitude;
            b->vy -= dy * c->mass * magnitude;
            b->vz -= dz * c->mass * magnitude;
            c->vx += dx * b->mass * magnitude;
            c->vy += dy * b->mass * magnitude;
            c->vz += dz * b->mass * magnitude;
        }
    }
    for (int i = 0; i < BODIES; i++) {
        bodies[i].x += dt * bodies[i].vx;
        bodies[i].y += dt * bodies[i].vy;
        bodies[i].z += dt * bodies[i].vz;
    }
}

static float vector_a[256], vector_b[256];

/* Single precision: fused multiply-adds over two vectors, with conversions from integers. */
static float dot_products(int rounds) {
    float total = 0;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < 256; i++) {
            vector_a[i] = (float)(i * 7 + round) / 64.0f;
            vector_b[i] = 1.0f / (float)(i + 1 + round);
        }
        float sum = 0;
        for (int i = 0; i < 256; i++) sum = __builtin_fmaf(vector_a[i], vector_b[i], sum);
        total += sum;
    }
    return total;
}

static uint64_t bits64(double value) {
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static uint32_t bits32(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static void __attribute__((noinline)) run(void) {
    uint32_t start = rdinstret();
    offset_momentum();
    uint64_t before = bits64(energy());
    for (int step = 0; step < STEPS; step++) advance(0.01);
    uint64_t after = bits64(energy());
    uint32_t dots = bits32(dot_products(40));
    uint32_t instructions = rdinstret() - start;
    uint32_t checksum = (uint32_t)(before ^ (before >> 32)) * 31u + (uint32_t)(after ^ (after >> 32));
    rt_printf("fpbench energies %08x%08x %08x%08x dots %08x checksum %08x instructions %u\n", (uint32_t)(before >> 32),
              (uint32_t)before, (uint32_t)(after >> 32), (uint32_t)after, dots, checksum ^ dots, instructions);
}

int main(void) {
    csr_set(mstatus, 1u << 13); /* FS = Initial: the FPU on */
    run();
    return 0;
}
