using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>Four 32-bit registers (an mma.sync A fragment, or the accumulators of one m16n8 tile).</summary>
public struct Reg4
{
    public uint X0, X1, X2, X3;
}

/// <summary>The fp32 accumulators of one m16n8 tile (rows group and group+8, columns 2·quad and 2·quad+1).</summary>
public struct Acc
{
    public float C0, C1, C2, C3;
}

/// <summary>The eight m16n8 accumulators of a 16×64 tile (an m16 row of a GEMM warp tile, 64 attention scores or 64 output dims).</summary>
public struct Acc8
{
    public Acc T0, T1, T2, T3, T4, T5, T6, T7;
}

/// <summary>
/// The PTX instructions of the tensor-core kernels, one <c>CudaAsm</c> call each (GPU only; callers guard with
/// <c>CudaAsm.IsSupported</c>). Shared-memory operands are 32-bit <c>.shared</c> byte addresses
/// (<see cref="SharedAddress"/>); ILGPU routes asm operands through local slots, which <see cref="PtxPostPass"/> turns
/// back into registers.
/// </summary>
public static class TensorCorePtx
{
    /// <summary>The symbol ILGPU 1.5.3 declares for a kernel's dynamic shared memory (checked by a PTX test).</summary>
    public const string DynamicSharedSymbol = "__dyn_shared_alloca";

    /// <summary>
    /// The <c>.shared</c> byte address of the kernel's dynamic shared memory. ILGPU offers no pointer-to-integer
    /// conversion inside kernels, so the address comes from the symbol itself.
    /// </summary>
    public static uint DynamicSharedBase()
    {
        var address = new Output<uint>();
        CudaAsm.EmitRef("mov.u32 %0, " + DynamicSharedSymbol + ";", ref address);
        return address.Value;
    }

    /// <summary>
    /// The device address of a buffer's first element, read on the host (kernels cannot convert a pointer to an integer
    /// in ILGPU 1.5.3, and cp.async needs the address): passed to the tensor-core kernels as a 64-bit argument.
    /// </summary>
    public static long DeviceAddress(MemoryBuffer buffer) => buffer.NativePtr.ToInt64();

    /// <summary>Asynchronous 16-byte copy global → shared, bypassing L1 (completes at <see cref="Wait"/>).</summary>
    public static void CopyAsync16(uint shared, long global)
    {
        Input<uint> s = shared;
        Input<long> g = global;
        CudaAsm.EmitRef("cp.async.cg.shared.global [%0], [%1], 16;", ref s, ref g);
    }

    public static void Commit() => CudaAsm.Emit("cp.async.commit_group;");

    /// <summary>Waits until at most <paramref name="pending"/> (0..3) committed copy groups are still in flight.</summary>
    public static void Wait(int pending)
    {
        // The count is an immediate in PTX: one uniform branch per value.
        if (pending <= 0) CudaAsm.Emit("cp.async.wait_group 0;");
        else if (pending == 1) CudaAsm.Emit("cp.async.wait_group 1;");
        else if (pending == 2) CudaAsm.Emit("cp.async.wait_group 2;");
        else CudaAsm.Emit("cp.async.wait_group 3;");
    }

    /// <summary>Four 8×8 b16 matrices from shared memory; lane l gives the address of row l%8 of matrix l/8.</summary>
    public static Reg4 LoadMatrixX4(uint shared)
    {
        var d0 = new Output<uint>(); var d1 = new Output<uint>(); var d2 = new Output<uint>(); var d3 = new Output<uint>();
        Input<uint> a = shared;
        CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];", ref d0, ref d1, ref d2, ref d3, ref a);
        return new Reg4 { X0 = d0.Value, X1 = d1.Value, X2 = d2.Value, X3 = d3.Value };
    }

    /// <summary>As <see cref="LoadMatrixX4"/>, each matrix transposed (a k-major operand read as n-major fragments).</summary>
    public static Reg4 LoadMatrixX4Transposed(uint shared)
    {
        var d0 = new Output<uint>(); var d1 = new Output<uint>(); var d2 = new Output<uint>(); var d3 = new Output<uint>();
        Input<uint> a = shared;
        CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];", ref d0, ref d1, ref d2, ref d3, ref a);
        return new Reg4 { X0 = d0.Value, X1 = d1.Value, X2 = d2.Value, X3 = d3.Value };
    }

    /// <summary>c += a·b on one m16n8k16 tile, fp16 operands, fp32 accumulators.</summary>
    public static void Mma(ref Acc c, Reg4 a, uint b0, uint b1)
    {
        var d0 = new Output<float>(); var d1 = new Output<float>(); var d2 = new Output<float>(); var d3 = new Output<float>();
        Input<uint> ia0 = a.X0, ia1 = a.X1, ia2 = a.X2, ia3 = a.X3, ib0 = b0, ib1 = b1;
        Input<float> ic0 = c.C0, ic1 = c.C1, ic2 = c.C2, ic3 = c.C3;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};",
            ref d0, ref d1, ref d2, ref d3, ref ia0, ref ia1, ref ia2, ref ia3, ref ib0, ref ib1, ref ic0, ref ic1, ref ic2, ref ic3);
        c.C0 = d0.Value; c.C1 = d1.Value; c.C2 = d2.Value; c.C3 = d3.Value;
    }

    /// <summary>c += a·b on one m16n8k16 tile with fp16 accumulators (two packed registers); for the peak-rate probe.</summary>
    public static void MmaHalfAccumulate(ref uint c0, ref uint c1, Reg4 a, uint b0, uint b1)
    {
        var d0 = new Output<uint>(); var d1 = new Output<uint>();
        Input<uint> ia0 = a.X0, ia1 = a.X1, ia2 = a.X2, ia3 = a.X3, ib0 = b0, ib1 = b1, ic0 = c0, ic1 = c1;
        CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 {%0,%1}, {%2,%3,%4,%5}, {%6,%7}, {%8,%9};",
            ref d0, ref d1, ref ia0, ref ia1, ref ia2, ref ia3, ref ib0, ref ib1, ref ic0, ref ic1);
        c0 = d0.Value; c1 = d1.Value;
    }

    /// <summary>Two fp32 values rounded to fp16 and packed (lo in the low half), as an mma operand register.</summary>
    public static uint PackHalf2(float lo, float hi)
    {
        var d = new Output<uint>();
        Input<float> l = lo, h = hi;
        CudaAsm.EmitRef("cvt.rn.f16x2.f32 %0, %2, %1;", ref d, ref l, ref h);
        return d.Value;
    }

    /// <summary>2^x on the special-function unit.</summary>
    public static float Exp2(float x)
    {
        var d = new Output<float>();
        Input<float> a = x;
        CudaAsm.EmitRef("ex2.approx.ftz.f32 %0, %1;", ref d, ref a);
        return d.Value;
    }

    /// <summary>A register from lane <c>lane ^ mask</c> of the warp.</summary>
    public static float ShuffleXor(float x, int mask)
    {
        var d = new Output<float>();
        Input<float> a = x;
        Input<int> m = mask;
        CudaAsm.EmitRef("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;", ref d, ref a, ref m);
        return d.Value;
    }
}
