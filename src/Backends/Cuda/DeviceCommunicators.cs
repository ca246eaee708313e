using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Runtime;
using ModelCompiler.Runtime.Distributed;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// The collectives of a sharded program on device buffers, seen from one rank (one <see cref="GpuDevice"/>): the
/// device-side face of <see cref="ICommunicator"/>. Calls are ordered with the rank's kernels (same stream) and
/// may return before the data moved; every rank must make the same calls in the same order.
/// </summary>
public interface IDeviceCommunicator
{
    int Rank { get; }

    int Size { get; }

    /// <summary>receive = Σ over ranks of send (same length; they may be the same view).</summary>
    void AllReduceSum(ArrayView<float> send, ArrayView<float> receive);

    /// <summary>receive = every rank's send concatenated in rank order (receive holds Size × send.Length).</summary>
    void AllGather(ArrayView<float> send, ArrayView<float> receive);
}

/// <summary>
/// A host <see cref="ICommunicator"/> (the in-process one) used on device buffers by copying through the host: how
/// <c>--target cuda-sim --tp N</c> runs the cuda target's collectives in CI, without NCCL.
/// </summary>
public sealed class HostStagedCommunicator(ICommunicator host) : IDeviceCommunicator
{
    public int Rank => host.Rank;

    public int Size => host.Size;

    public void AllReduceSum(ArrayView<float> send, ArrayView<float> receive)
    {
        if (send.Length != receive.Length) throw new McException($"all_reduce: rank {Rank} sends {send.Length} elements into {receive.Length}");
        var data = new float[send.Length];
        if (data.Length > 0) send.CopyToCPU(data);
        host.AllReduceSum(data);
        if (data.Length > 0) receive.CopyFromCPU(data);
    }

    public void AllGather(ArrayView<float> send, ArrayView<float> receive)
    {
        var local = new float[send.Length];
        var gathered = new float[receive.Length];
        if (local.Length > 0) send.CopyToCPU(local);
        host.AllGather(local, gathered);
        if (gathered.Length > 0) receive.CopyFromCPU(gathered);
    }
}

/// <summary>
/// One rank of an <see cref="NcclGroup"/>: NCCL's collectives on this rank's device pointers, enqueued on the
/// accelerator's default stream (where the model's kernels run), so no host synchronisation is needed around them.
/// Call from the thread that drives this rank's GPU (its context current). Implements the host
/// <see cref="ICommunicator"/> too, by staging through a device buffer.
/// </summary>
public sealed class NcclCommunicator : IDeviceCommunicator, ICommunicator
{
    private readonly NcclLibrary _nccl;
    private readonly GpuDevice _device;

    internal NcclCommunicator(NcclLibrary nccl, GpuDevice device, nint comm, int rank, int size)
    {
        _nccl = nccl;
        _device = device;
        Handle = comm;
        Rank = rank;
        Size = size;
    }

    public int Rank { get; }

    public int Size { get; }

    /// <summary>The ncclComm_t.</summary>
    public nint Handle { get; }

    /// <summary>The stream NCCL runs on: ILGPU's default stream (the context's legacy stream, handle 0).</summary>
    public nint Stream => _device.StreamHandle;

    /// <summary>Collectives counted since the last reset (a report's "all-reduces per token").</summary>
    public int Calls { get; set; }

    public void AllReduceSum(ArrayView<float> send, ArrayView<float> receive)
    {
        if (send.Length != receive.Length) throw new McException($"all_reduce: rank {Rank} sends {send.Length} elements into {receive.Length}");
        Calls++;
        if (send.Length == 0) return;
        _nccl.AllReduceSum(send.LoadEffectiveAddressAsPtr(), receive.LoadEffectiveAddressAsPtr(), send.Length, Handle, Stream);
        _device.RestoreContext();
    }

    public void AllGather(ArrayView<float> send, ArrayView<float> receive)
    {
        if (receive.Length != send.Length * Size) throw new McException($"all_gather: rank {Rank} needs room for {Size} × {send.Length} elements, got {receive.Length}");
        Calls++;
        if (send.Length == 0) return;
        _nccl.AllGather(send.LoadEffectiveAddressAsPtr(), receive.LoadEffectiveAddressAsPtr(), send.Length, Handle, Stream);
        _device.RestoreContext();
    }

    public void AllReduceSum(float[] data) => Staged(data, data.Length, buffer => AllReduceSum(buffer.View, buffer.View), data);

    public void AllGather(float[] local, float[] gathered)
    {
        if (gathered.Length != (long)local.Length * Size) throw new McException($"all_gather: rank {Rank} needs room for {Size} × {local.Length} elements, got {gathered.Length}");
        using var send = _device.Accelerator.Allocate1D(local);
        Staged(gathered, gathered.Length, buffer => AllGather(send.View, buffer.View), null);
    }

    public void AllReduceSum(double[] data) => throw new McException("the NCCL communicator sums float32 tensors (the cuda target computes in float32)");

    public void AllGather(double[] local, double[] gathered) => throw new McException("the NCCL communicator gathers float32 tensors (the cuda target computes in float32)");

    private void Staged(float[] result, int length, Action<MemoryBuffer1D<float, Stride1D.Dense>> collective, float[]? initial)
    {
        using var buffer = _device.Accelerator.Allocate1D<float>(Math.Max(1, length));
        if (initial is { Length: > 0 }) buffer.View.SubView(0, initial.Length).CopyFromCPU(initial);
        collective(buffer);
        _device.Accelerator.Synchronize();
        if (length > 0) buffer.View.SubView(0, length).CopyToCPU(result);
    }
}

/// <summary>
/// NCCL over the GPUs of this process (<c>ncclCommInitAll</c>): one communicator per <see cref="GpuDevice"/>, each of
/// which must run in its GPU's primary context (NCCL works in the runtime API's primary contexts; see
/// <see cref="GpuDevice.OpenGroup"/>).
/// </summary>
public sealed class NcclGroup : IDisposable
{
    private readonly NcclLibrary _nccl;
    private readonly NcclCommunicator[] _ranks;
    private readonly IReadOnlyList<GpuDevice> _devices;
    private bool _disposed;

    public NcclGroup(NcclLibrary nccl, IReadOnlyList<GpuDevice> devices)
    {
        if (devices.Any(d => d.IsSimulated)) throw new McException("NCCL runs on CUDA GPUs, not on the cuda-sim accelerator");
        _nccl = nccl;
        _devices = devices;
        var comms = nccl.CommInitAll(devices.Select(d => d.Ordinal).ToArray());
        devices[0].RestoreContext();
        _ranks = devices.Select((d, r) => new NcclCommunicator(nccl, d, comms[r], r, devices.Count)).ToArray();
    }

    public NcclLibrary Library => _nccl;

    public IReadOnlyList<NcclCommunicator> Ranks => _ranks;

    /// <summary>
    /// One all-reduce over every rank from this one thread, inside ncclGroupStart/End (NCCL's rule when one thread
    /// drives several GPUs): how the bandwidth sweep runs.
    /// </summary>
    public void AllReduceSumAll(IReadOnlyList<ArrayView<float>> buffers)
    {
        _nccl.GroupStart();
        for (int r = 0; r < _ranks.Length; r++)
        {
            _devices[r].Accelerator.Bind();
            _nccl.AllReduceSum(buffers[r].LoadEffectiveAddressAsPtr(), buffers[r].LoadEffectiveAddressAsPtr(), buffers[r].Length, _ranks[r].Handle, _ranks[r].Stream);
        }
        _nccl.GroupEnd();
        _devices[0].Accelerator.Bind();
        _devices[0].RestoreContext();
    }

    /// <summary>Stops every rank's pending collectives (a rank failed: the others must not wait for it forever).</summary>
    public void Abort()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var r in _ranks) _nccl.CommAbort(r.Handle);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var r in _ranks) _nccl.CommDestroy(r.Handle);
    }
}
