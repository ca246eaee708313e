using System.Runtime.InteropServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// Raises a kernel's dynamic shared-memory limit above the default 48 KB (ILGPU 1.5.3 never does): the driver's
/// <c>cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)</c> on the kernel's function handle, so that
/// tiles can use up to the 227 KB an H100 block may have.
/// </summary>
public static unsafe class DynamicSharedMemory
{
    /// <summary>CUfunction_attribute values (cuda.h).</summary>
    public const int MaxDynamicSharedSizeBytes = 8, SharedSizeBytes = 1;

    private static readonly Lazy<(nint Set, nint Get)> Entry = new(() =>
    {
        nint lib = 0;
        foreach (var name in new[] { "libcuda.so.1", "libcuda.so", "nvcuda.dll" })
            if (NativeLibrary.TryLoad(name, out lib)) break;
        if (lib == 0) return (0, 0);
        NativeLibrary.TryGetExport(lib, "cuFuncSetAttribute", out var set);
        NativeLibrary.TryGetExport(lib, "cuFuncGetAttribute", out var get);
        return (set, get);
    });

    /// <summary>Allows <paramref name="bytes"/> of dynamic shared memory per block for a CUDA kernel.</summary>
    public static void SetMaximum(Kernel kernel, int bytes)
    {
        var function = Function(kernel);
        int status = ((delegate* unmanaged<nint, int, int, int>)Require(Entry.Value.Set))(function, MaxDynamicSharedSizeBytes, bytes);
        if (status != 0) throw new McException($"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {bytes}) failed with CUDA error {status}");
    }

    /// <summary>The kernel's current dynamic shared-memory limit, as the driver reports it.</summary>
    public static int GetMaximum(Kernel kernel)
    {
        int value;
        int status = ((delegate* unmanaged<int*, int, nint, int>)Require(Entry.Value.Get))(&value, MaxDynamicSharedSizeBytes, Function(kernel));
        if (status != 0) throw new McException($"cuFuncGetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) failed with CUDA error {status}");
        return value;
    }

    private static nint Function(Kernel kernel) => kernel is CudaKernel cuda
        ? cuda.FunctionPtr
        : throw new McException("dynamic shared-memory limits apply to CUDA kernels only (this kernel runs on the CPU accelerator)");

    private static nint Require(nint entry) => entry != 0 ? entry : throw new McException("the CUDA driver library (libcuda) is not available");
}
