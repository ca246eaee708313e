using System.Collections.Concurrent;
using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// One accelerator and the kernels loaded on it: an NVIDIA GPU through the CUDA driver (<c>cuda</c>), or ILGPU's CPU
/// accelerator simulating one (<c>cuda-sim</c>: warp size 32, one CPU thread per GPU thread; how CI runs the kernels).
/// On the GPU every kernel's PTX goes through <see cref="PtxPostPass"/> before the driver loads it; the post-processed
/// PTX is kept (<see cref="Ptx"/>) for reports and checks.
/// </summary>
public sealed partial class GpuDevice : IDisposable
{
    private readonly ConcurrentDictionary<MethodInfo, Kernel> _kernels = new();

    private GpuDevice(Context context, Accelerator accelerator, bool simulated)
    {
        Context = context;
        Accelerator = accelerator;
        IsSimulated = simulated;
    }

    public Context Context { get; }

    private const BindingFlags AnyInstance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
    private static readonly PropertyInfo BackendProperty = typeof(Accelerator).GetProperty("Backend", AnyInstance)!;
    private static readonly PropertyInfo EntryPointProperty = typeof(CompiledKernel).GetProperty("EntryPoint", AnyInstance)!;
    private static readonly ConstructorInfo PtxKernelConstructor = typeof(PTXCompiledKernel).GetConstructors(AnyInstance).Single(c => c.GetParameters().Length == 4);

    public Accelerator Accelerator { get; }

    public bool IsSimulated { get; }

    /// <summary>What the PTX post-pass promoted, per loaded kernel (GPU only).</summary>
    public ConcurrentDictionary<string, PtxPostPass.Result> Ptx { get; } = new(StringComparer.Ordinal);

    /// <summary>Threads per group of the row reductions: a full block on the GPU, one warp on the simulator (its threads are CPU threads).</summary>
    public int ReductionGroup => IsSimulated ? 32 : Kernels.ReductionKernels.MaxGroup;

    public string Description => IsSimulated ? "ILGPU CPU accelerator (cuda-sim)" : $"{Accelerator.Name} (CUDA)";

    /// <summary>The GPU, or one-line <see cref="McException"/> when there is none.</summary>
    public static GpuDevice Open(bool simulate)
    {
        if (simulate)
        {
            var cpuContext = Context.Create(b => b.CPU(CPUDeviceKind.Nvidia).Optimize(OptimizationLevel.O1));
            return new GpuDevice(cpuContext, cpuContext.CreateCPUAccelerator(0), simulated: true);
        }
        Context? context = null;
        try
        {
            context = Context.Create(b => b.Cuda().Optimize(OptimizationLevel.O2));
            if (context.GetCudaDevices().Count == 0) throw new McException(NoGpu);
            return new GpuDevice(context, context.CreateCudaAccelerator(0), simulated: false);
        }
        catch (Exception e) when (e is not McException)
        {
            context?.Dispose();
            throw new McException($"{NoGpu} ({e.GetType().Name}: {e.Message.Split('\n')[0]})");
        }
        catch
        {
            context?.Dispose();
            throw;
        }
    }

    public const string NoGpu = "--target cuda: no CUDA GPU found (it needs an NVIDIA GPU and its driver; --target cuda-sim runs the same kernels on the CPU)";

    /// <summary>The kernel of an explicitly grouped kernel method, compiled (and on the GPU post-processed) once.</summary>
    public Kernel Load(MethodInfo method) => _kernels.GetOrAdd(method, m =>
    {
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(m);
        var compiled = ((Backend)BackendProperty.GetValue(Accelerator)!).Compile(entry, default);
        if (compiled is PTXCompiledKernel ptx)
        {
            var result = PtxPostPass.Run(ptx.PTXAssembly);
            Ptx[m.DeclaringType!.Name + "." + m.Name] = result;
            // ILGPU keeps these internal; the PTX text is the only thing replaced.
            compiled = (CompiledKernel)PtxKernelConstructor.Invoke([Context, EntryPointProperty.GetValue(ptx), ptx.Info, result.Ptx]);
        }
        return Accelerator.LoadKernel(compiled);
    });

    /// <summary>A typed launcher (stream, config, arguments…) for a kernel method.</summary>
    public TDelegate Launcher<TDelegate>(Delegate kernelMethod) where TDelegate : Delegate =>
        Load(kernelMethod.Method).CreateLauncherDelegate<TDelegate>();

    public void Dispose()
    {
        if (_primary) RestoreContext();
        foreach (var k in _kernels.Values) k.Dispose();
        ReleasePrimaryContext();
        Accelerator.Dispose();
        Context.Dispose();
    }

    /// <summary>
    /// The PTX ILGPU emits for a kernel method, for an architecture, without any GPU or driver (ILGPU's PTX backend is
    /// pure managed code): how CI checks the kernels' PTX.
    /// </summary>
    public static string GeneratePtx(MethodInfo kernel, CudaArchitecture architecture, CudaInstructionSet instructionSet)
    {
        using var context = Context.Create(b => b.CPU(CPUDeviceKind.Nvidia).Optimize(OptimizationLevel.O2));
        var backend = new PTXBackend(context, new CudaCapabilityContext(architecture), architecture, instructionSet, null);
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), default);
        return compiled.PTXAssembly;
    }
}
