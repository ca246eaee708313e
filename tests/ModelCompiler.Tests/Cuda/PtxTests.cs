using System.Reflection;
using ILGPU.Runtime.Cuda;
using ModelCompiler.Backends.Cuda;
using ModelCompiler.Backends.Cuda.Kernels;

namespace ModelCompiler.Tests.Cuda;

/// <summary>
/// The PTX post-pass on PTX text (a slot shaped as ILGPU 1.5.3 emits it for inline-asm operands), and the PTX of the hot
/// kernels generated through ILGPU's PTX backend without a GPU: after the post-pass, no local-memory traffic.
/// </summary>
public sealed class PtxTests
{
    // Shaped as ILGPU emits an inline-asm Output/Input pair (seen in the PTX of a CudaAsm.EmitRef kernel).
    private const string AsmSlots = """
        .version 8.0
        .target sm_80
        .address_size 64

        .visible .entry Kernel_K(
        	.param .align 8 .b8 _x_1[16]
        )
        {
        	.local .align 4 .b8 __local_depot0[4];
        	.local .align 4 .b8 __local_depot1[4];
        	.local .align 8 .b8 __local_depot2[16];

        	.reg .pred	%p<4>;
        	.reg .f32	%f<21>;
        	.reg .b64	%rd<12>;

        	mov.b64	%rd5, __local_depot0;
        	mov.b64	%rd6, __local_depot1;
        	mov.b64	%rd7, __local_depot2;
        	st.local.f32	[%rd5], 0f00000000;
        	st.local.f32	[%rd6], %f3;
        	ld.local.f32	%f16, [%rd6];
        	add.f32 	%f15, %f16, %f16;
        	st.local.f32	[%rd5], %f15;
        	ld.local.f32	%f5, [%rd5];
        	st.local.v2.f32	[%rd7+8], {%f1, %f2};
        	ret;
        }
        """;

    [Fact]
    public void ScalarAsmSlotsBecomeRegisters()
    {
        var r = PtxPostPass.Run(AsmSlots);
        Assert.Equal(2, r.SlotsPromoted);
        Assert.Equal(1, r.SlotsKept); // the vector slot at an offset is left alone
        Assert.DoesNotContain("__local_depot0", r.Ptx);
        Assert.DoesNotContain("__local_depot1", r.Ptx);
        Assert.Contains("__local_depot2", r.Ptx);
        Assert.Equal(1, PtxPostPass.LocalAccesses(r.Ptx)); // only the kept vector store
        Assert.Contains("mov.b32\t%mcslot0, 0x00000000;", r.Ptx);
        Assert.Contains("mov.b32\t%mcslot1, %f3;", r.Ptx);
        Assert.Contains("mov.b32\t%f16, %mcslot1;", r.Ptx);
        Assert.Contains("mov.b32\t%f5, %mcslot0;", r.Ptx);
        Assert.Contains(".reg .b32 %mcslot0;", r.Ptx);
        // Declared once, before the first register declaration.
        Assert.True(r.Ptx.IndexOf(".reg .b32 %mcslot0;", StringComparison.Ordinal) < r.Ptx.IndexOf(".reg .pred", StringComparison.Ordinal));
    }

    [Fact]
    public void SlotWhoseAddressEscapesIsKept()
    {
        var ptx = AsmSlots.Replace("add.f32 \t%f15, %f16, %f16;", "add.u64 \t%rd9, %rd6, 4;");
        var r = PtxPostPass.Run(ptx);
        Assert.Contains("__local_depot1", r.Ptx);
        Assert.Contains("ld.local.f32\t%f16, [%rd6];", r.Ptx);
    }

    [Fact]
    public void RetargetsToHopper()
    {
        var r = PtxPostPass.Run(AsmSlots, retarget: "sm_90a");
        Assert.Contains(".target sm_90a", r.Ptx);
        Assert.DoesNotContain(".target sm_80", r.Ptx);
        Assert.Contains(".version 8.0", r.Ptx);
    }

    [Fact]
    public void TextWithoutSlotsIsUnchanged()
    {
        const string plain = ".version 8.0\n.target sm_80\n.visible .entry K()\n{\n\t.reg .b32 %r<2>;\n\tret;\n}\n";
        Assert.Equal(plain, PtxPostPass.Run(plain).Ptx);
    }

    public static TheoryData<string> HotKernels() => new(HotKernelMethods().Keys);

    private static Dictionary<string, MethodInfo> HotKernelMethods() => new[]
    {
        typeof(GemmKernels).GetMethod(nameof(GemmKernels.Gemm))!,
        typeof(AttentionKernels).GetMethod(nameof(AttentionKernels.Attention))!,
        typeof(ReductionKernels).GetMethod(nameof(ReductionKernels.Norm))!,
        typeof(ReductionKernels).GetMethod(nameof(ReductionKernels.Line))!,
        typeof(ReductionKernels).GetMethod(nameof(ReductionKernels.ArgMax))!,
        typeof(ElementwiseKernels).GetMethod(nameof(ElementwiseKernels.Binary))!,
        typeof(ElementwiseKernels).GetMethod(nameof(ElementwiseKernels.Rope))!,
        typeof(ElementwiseKernels).GetMethod(nameof(ElementwiseKernels.GateEpilogue))!,
        typeof(ElementwiseKernels).GetMethod(nameof(ElementwiseKernels.Embedding))!,
        typeof(QuantizedKernels).GetMethod(nameof(QuantizedKernels.Gemv))!,
        typeof(QuantizedKernels).GetMethod(nameof(QuantizedKernels.QuantizeRows))!,
    }.ToDictionary(m => m.DeclaringType!.Name + "." + m.Name);

    /// <summary>Generated offline (no GPU, no driver) for sm_80 as the GPU loads it, then post-processed: no ld.local/st.local.</summary>
    [Theory]
    [MemberData(nameof(HotKernels))]
    public void HotKernelPtxHasNoLocalMemoryTraffic(string kernel)
    {
        var ptx = GpuDevice.GeneratePtx(HotKernelMethods()[kernel], CudaArchitecture.SM_80, CudaInstructionSet.ISA_80);
        Assert.Contains(".entry", ptx);
        var processed = PtxPostPass.Run(ptx).Ptx;
        Assert.Equal(0, PtxPostPass.LocalAccesses(processed));
    }

    /// <summary>
    /// The tensor-core GEMM (inline mma.sync through CudaAsm) cannot run on the CPU accelerator: its PTX is what CI can
    /// check. ILGPU routes its asm operands through local memory; after the post-pass none is left and mma.sync is there.
    /// </summary>
    [Fact]
    public void Int8TensorCoreGemmPtxUsesInt8MmaSyncAndRegistersOnly()
    {
        var ptx = GpuDevice.GeneratePtx(typeof(Int8TensorCoreGemm).GetMethod(nameof(Int8TensorCoreGemm.Gemm))!, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80);
        Assert.Contains("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", ptx);
        var processed = PtxPostPass.Run(ptx);
        Assert.Equal(0, PtxPostPass.LocalAccesses(processed.Ptx));
        Assert.True(processed.SlotsPromoted > 0);
    }

    [Fact]
    public void TensorCoreGemmPtxUsesMmaSyncAndRegistersOnly()
    {
        var ptx = GpuDevice.GeneratePtx(typeof(TensorCoreGemm).GetMethod(nameof(TensorCoreGemm.Gemm))!, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80);
        Assert.True(PtxPostPass.LocalAccesses(ptx) > 0, "ILGPU no longer spills asm operands: the post-pass may be obsolete");
        var processed = PtxPostPass.Run(ptx, retarget: "sm_90a");
        Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", processed.Ptx);
        Assert.Equal(0, PtxPostPass.LocalAccesses(processed.Ptx));
        Assert.Contains(".target sm_90a", processed.Ptx);
    }
}
