using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Backends.Cuda.Kernels;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cuda;

/// <summary>
/// What a rank of a tensor-parallel group (<c>--tp N</c>) needs beyond a whole model: its collectives go through
/// <see cref="Communicator"/>, its vocab-parallel embedding zeroes other ranks' rows, and its weight slices (static:
/// slices, reshapes, transposes of weights) are computed once at load, after which the whole weights they were cut
/// from are freed, so each GPU keeps only its shard.
/// </summary>
public sealed partial class CudaModel
{
    /// <summary>This rank's collectives (null for a model that is not sharded).</summary>
    public IDeviceCommunicator? Communicator { get; set; }

    private Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>? _embeddingShard;

    private DeviceValue Collective(Node node, DeviceValue x)
    {
        int ranks = checked((int)node.Attrs.Int("ranks"));
        var comm = Communicator ?? throw new McException($"{Interpreter.Describe(node)}: this model is one rank of a tensor-parallel group; set its Communicator (--tp) before running it");
        if (comm.Size != ranks) throw new McException($"{Interpreter.Describe(node)}: the model was sharded for {ranks} ranks but its group has {comm.Size}");
        if (node.Op == OpKind.AllReduce)
        {
            var sum = Allocate(node.Type.DType, x.Shape);
            comm.AllReduceSum(x.View, sum.View);
            return sum;
        }
        int axis = Axis(node.Attrs.Int("axis"), x.Shape.Length);
        long outer = x.Shape.Take(axis).Aggregate(1L, (p, d) => p * d), chunk = x.Shape.Skip(axis).Aggregate(1L, (p, d) => p * d);
        var shape = x.Shape.ToArray();
        shape[axis] *= ranks;
        // NCCL concatenates whole buffers rank by rank: [ranks, outer, chunk]; the op wants [outer, ranks·chunk].
        var gathered = Allocate(node.Type.DType, [ranks * outer * chunk]);
        comm.AllGather(x.View, gathered.View);
        if (outer == 1) return gathered.Reshaped(node.Type.DType, shape);
        var y = Allocate(node.Type.DType, shape);
        Copy(gathered, y, [outer, ranks, chunk], [chunk, outer * chunk, 1], 0, [ranks * chunk, chunk, 1], 0);
        return y;
    }

    private DeviceValue EmbeddingShard(Node node, DeviceValue ids, DeviceValue table)
    {
        long rows = table.Shape[0], offset = node.Attrs.Int("offset"), vocab = node.Attrs.Int("vocab");
        int d = (int)table.Shape[1];
        var idv = ids.Ints ?? throw new McException($"{Interpreter.Describe(node)}: token ids must be integers");
        var local = new int[idv.Length];
        for (int t = 0; t < idv.Length; t++)
        {
            if (idv[t] < 0 || idv[t] >= vocab) throw new McException($"{Interpreter.Describe(node)}: token id {idv[t]} is outside the table's {vocab} rows");
            long row = idv[t] - offset;
            local[t] = row >= 0 && row < rows ? (int)row : -1;
        }
        var y = Allocate(node.Type.DType, [.. ids.Shape, d]);
        if (y.Count == 0) return y;
        _launch.Count++;
        (_embeddingShard ??= _device.Launcher<Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>>(ShardKernels.EmbeddingShard))(
            _device.Accelerator.DefaultStream, Elements(y.Count), Ints(local), table.View, y.View, (int)y.Count, d);
        return y;
    }

}
