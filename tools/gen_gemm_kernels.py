#!/usr/bin/env python3
"""Generates src/Runtime/Kernels/Gemm/GemmMicroKernels.g.cs: the fully unrolled register-blocked
GEMM micro-kernels (C# has no constant generics, and RyuJIT keeps accumulators in registers only
when they are separate locals), one method per (ISA, weight type, row count mr).

    python3 tools/gen_gemm_kernels.py > src/Runtime/Kernels/Gemm/GemmMicroKernels.g.cs

Every kernel computes a tile C[mr, 32] (one packed-weight panel, NR = 32 columns):
    C[i, j] (+)= sum_k A[k*mr + i] * B[k*32 + j]       A: packed X rows, B: packed weight panel
Flags: LoadC = accumulate into C (later K blocks); otherwise start from residual r (if any) + bias.
Small mr splits the k loop over several accumulator sets so at least MIN_ACC FMA chains are in flight
(FMA latency x FMA ports), which matters for M = 1 (decode).
"""
import sys

NR = 32
MIN_ACC = 8

ISAS = {
    # name: (vector type, lanes, max mr, fma expr)
    "V512": ("Vector512", 16, 14, "Avx512F.FusedMultiplyAdd({a}, {b}, {c})"),
    "V256": ("Vector256", 8, 6, "Fma.MultiplyAdd({a}, {b}, {c})"),
}
# weight element types: (suffix, C# pointer type, element bytes)
WTYPES = {"F32": "float", "BF16": "ushort", "F16": "ushort"}


def kernel(isa, wt, mr, out):
    vt, lanes, _, fma = ISAS[isa]
    # V256 kernels cover 16 columns (half a panel); the driver calls them on both halves.
    cols = NR if isa == "V512" else 16
    nv = cols // lanes
    nacc = mr * nv
    splits = max(1, -(-MIN_ACC // nacc))
    btype = WTYPES[wt]
    # Column of C where vector j starts. V256 16-bit kernels read 16 weights (8 lanes of 2) whose
    # low halves are columns 0..7 of this half and high halves the columns 16 further on.
    col = (lambda j: j * 16) if (isa == "V256" and wt != "F32") else (lambda j: j * lanes)
    name = f"{isa}_{wt}_{mr}"
    w = out.append
    w(f"    [MethodImpl(MethodImplOptions.AggressiveOptimization)]")
    w(f"    internal static void {name}(int kc, float* a, {btype}* b, float* c, nint ldc, float* bias, float* r, nint ldr, int flags)")
    w("    {")
    acc = lambda s, i, j: f"c{s}_{i}_{j}"
    for s in range(splits):
        w("        " + vt + "<float> " + ", ".join(acc(s, i, j) for i in range(mr) for j in range(nv)) + ";")
    w("        if ((flags & LoadC) != 0)")
    w("        {")
    for i in range(mr):
        for j in range(nv):
            w(f"            {acc(0, i, j)} = {vt}.Load(c + {i} * ldc + {col(j)});")
    w("        }")
    w("        else if (r != null)")
    w("        {")
    for i in range(mr):
        for j in range(nv):
            w(f"            {acc(0, i, j)} = {vt}.Load(r + {i} * ldr + {col(j)});")
    w("        }")
    w("        else")
    w("        {")
    for i in range(mr):
        for j in range(nv):
            w(f"            {acc(0, i, j)} = {vt}<float>.Zero;")
    w("        }")
    w("        if ((flags & LoadC) == 0 && bias != null)")
    w("        {")
    for j in range(nv):
        w(f"            var bb{j} = {vt}.Load(bias + {col(j)});")
    for i in range(mr):
        for j in range(nv):
            w(f"            {acc(0, i, j)} += bb{j};")
    w("        }")
    for s in range(1, splits):
        for i in range(mr):
            for j in range(nv):
                w(f"        {acc(s, i, j)} = {vt}<float>.Zero;")

    def step(s, koff):
        # one k step into accumulator set s; a/b offsets relative to current pointers
        lines = []
        if wt == "F32":
            for j in range(nv):
                lines.append(f"var b{s}_{j} = {vt}.Load(b + {koff * 32 + j * lanes});")
        else:
            conv = "Bf16ToSingle" if wt == "BF16" else "F16ToSingle"
            if isa == "V512":
                # 32 16-bit weights in one 64-byte load; the packing interleaves columns j and j+16 in
                # each 32-bit lane, so the low halves are columns 0..15 and the high halves 16..31.
                lines.append(f"var w{s} = Vector512.Load((uint*)(b + {koff * 32}));")
                lines.append(f"var b{s}_0 = {conv}Lo(w{s});")
                lines.append(f"var b{s}_1 = {conv}Hi(w{s});")
            else:
                # 16 columns = half a panel: columns j and j+8 of this half share a 32-bit lane.
                lines.append(f"var w{s} = Vector256.Load((uint*)(b + {koff * 32}));")
                lines.append(f"var b{s}_0 = {conv}Lo(w{s});")
                lines.append(f"var b{s}_1 = {conv}Hi(w{s});")
        for i in range(mr):
            lines.append(f"var a{s}_{i} = {vt}.Create(a[{koff * mr + i}]);")
            for j in range(nv):
                lines.append(f"{acc(s, i, j)} = " + fma.format(a=f"a{s}_{i}", b=f"b{s}_{j}", c=acc(s, i, j)) + ";")
        return lines

    w("        int k = 0;")
    if splits > 1:
        w(f"        for (; k + {splits} <= kc; k += {splits})")
        w("        {")
        for s in range(splits):
            for l in step(s, s):
                w("            " + l)
        w(f"            a += {splits * mr};")
        w(f"            b += {splits * 32};")
        w("        }")
    w("        for (; k < kc; k++)")
    w("        {")
    for l in step(0, 0):
        w("            " + l)
    w(f"            a += {mr};")
    w("            b += 32;")
    w("        }")
    for s in range(1, splits):
        for i in range(mr):
            for j in range(nv):
                w(f"        {acc(0, i, j)} += {acc(s, i, j)};")
    for i in range(mr):
        for j in range(nv):
            w(f"        {vt}.Store({acc(0, i, j)}, c + {i} * ldc + {col(j)});")
    w("    }")
    w("")


def main():
    out = []
    w = out.append
    w("// <auto-generated> by tools/gen_gemm_kernels.py; do not edit by hand. </auto-generated>")
    w("using System.Runtime.CompilerServices;")
    w("using System.Runtime.Intrinsics;")
    w("using System.Runtime.Intrinsics.X86;")
    w("")
    w("namespace ModelCompiler.Runtime.Kernels;")
    w("")
    w("internal static unsafe partial class GemmMicroKernels")
    w("{")
    for isa, (vt, lanes, maxmr, _) in ISAS.items():
        for wt, btype in WTYPES.items():
            for mr in range(1, maxmr + 1):
                kernel(isa, wt, mr, out)
            w(f"    internal static readonly delegate*<int, float*, {btype}*, float*, nint, float*, float*, nint, int, void>[] {isa}_{wt} =")
            w("    [")
            for mr in range(1, maxmr + 1):
                w(f"        &{isa}_{wt}_{mr},")
            w("    ];")
            w("")
    w("}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
