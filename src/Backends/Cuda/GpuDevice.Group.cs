using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// Several devices of one process for <c>--tp N</c>: N GPUs, or N simulated ones. On GPUs each accelerator runs in its
/// device's <em>primary</em> context, because NCCL works in the primary contexts (it selects devices through the CUDA
/// runtime) while ILGPU 1.5.3 creates a context of its own, whose buffers and streams another context cannot use.
/// After ILGPU made its accelerator, the accelerator's context handle is swapped for the retained primary context.
/// </summary>
public sealed partial class GpuDevice
{
    private bool _primary;

    /// <summary>The device's CUDA ordinal (0 on the simulator).</summary>
    public int Ordinal { get; private set; }

    /// <summary>The CUstream the kernels run on: ILGPU's default stream, the context's legacy stream (0).</summary>
    public nint StreamHandle => Accelerator.DefaultStream is CudaStream s ? s.StreamPtr : 0;

    /// <summary>
    /// <paramref name="count"/> devices: GPUs 0..count-1 (each in its primary context, ready for NCCL), or, simulated,
    /// one CPU accelerator each. A one-line error when fewer GPUs exist. Dispose them last to first.
    /// </summary>
    public static IReadOnlyList<GpuDevice> OpenGroup(int count, bool simulate)
    {
        if (count < 1) throw new McException($"--tp needs at least 1 rank, got {count}");
        var devices = new List<GpuDevice>();
        try
        {
            if (simulate)
            {
                for (int r = 0; r < count; r++) devices.Add(Open(simulate: true));
                return devices;
            }
            int found = CountGpus();
            if (found < count) throw new McException(found == 0 ? NoGpu : $"--tp {count} needs {count} CUDA GPUs, one per rank; this machine has {found}");
            for (int r = 0; r < count; r++)
            {
                // A context per GPU: ranks load kernels on their own threads, and ILGPU contexts then share no state.
                var context = Context.Create(b => b.Cuda().Optimize(OptimizationLevel.O2));
                GpuDevice device;
                try { device = new GpuDevice(context, context.CreateCudaAccelerator(r), simulated: false) { Ordinal = r }; }
                catch { context.Dispose(); throw; }
                devices.Add(device);
                device.UsePrimaryContext();
            }
            devices[0].RestoreContext();
            return devices;
        }
        catch
        {
            for (int r = devices.Count - 1; r >= 0; r--) devices[r].Dispose();
            throw;
        }
    }

    private static int CountGpus()
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            return context.GetCudaDevices().Count;
        }
        catch (Exception e) when (e is not McException)
        {
            throw new McException($"{NoGpu} ({e.GetType().Name}: {e.Message.Split('\n')[0]})");
        }
    }

    /// <summary>Makes this device's context current on the calling thread again (NCCL calls switch it).</summary>
    public void RestoreContext()
    {
        Accelerator.Bind();
        if (_primary) Driver.Check(Driver.SetCurrent(Accelerator.NativePtr), "cuCtxSetCurrent");
    }

    private static readonly PropertyInfo NativePtrProperty = typeof(Accelerator).GetProperty(nameof(Accelerator.NativePtr))!;

    private void UsePrimaryContext()
    {
        Driver.Check(Driver.DeviceGet(out int device, Ordinal), "cuDeviceGet");
        Driver.Check(Driver.PrimaryRetain(out var primary, device), "cuDevicePrimaryCtxRetain");
        var own = Accelerator.NativePtr;
        NativePtrProperty.SetValue(Accelerator, primary);
        _primary = true;
        Driver.Check(Driver.SetCurrent(primary), "cuCtxSetCurrent");
        Driver.Check(Driver.Destroy(own), "cuCtxDestroy");   // ILGPU's own context: nothing was allocated in it yet
    }

    /// <summary>Before ILGPU disposes the accelerator (which destroys its context): hand it a context of its own again, and release the primary one.</summary>
    private void ReleasePrimaryContext()
    {
        if (!_primary) return;
        _primary = false;
        Driver.Check(Driver.DeviceGet(out int device, Ordinal), "cuDeviceGet");
        Driver.Check(Driver.Create(out var own, 0, device), "cuCtxCreate");
        NativePtrProperty.SetValue(Accelerator, own);
        Driver.Check(Driver.SetCurrent(own), "cuCtxSetCurrent");
        Driver.Check(Driver.PrimaryRelease(device), "cuDevicePrimaryCtxRelease");
    }

    /// <summary>The few CUDA driver calls ILGPU does not expose.</summary>
    private static class Driver
    {
        private const string Lib = "libcuda.so.1";

        [DllImport(Lib, EntryPoint = "cuDeviceGet")] public static extern int DeviceGet(out int device, int ordinal);
        [DllImport(Lib, EntryPoint = "cuDevicePrimaryCtxRetain")] public static extern int PrimaryRetain(out nint context, int device);
        [DllImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static extern int PrimaryRelease(int device);
        [DllImport(Lib, EntryPoint = "cuCtxSetCurrent")] public static extern int SetCurrent(nint context);
        [DllImport(Lib, EntryPoint = "cuCtxDestroy_v2")] public static extern int Destroy(nint context);
        [DllImport(Lib, EntryPoint = "cuCtxCreate_v2")] public static extern int Create(out nint context, uint flags, int device);

        public static void Check(int status, string call)
        {
            if (status != 0) throw new McException($"{call} failed with CUDA error {status}");
        }
    }
}
