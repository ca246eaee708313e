namespace ModelCompiler.Runtime.Distributed;

/// <summary>A compiled model that is one rank of a tensor-parallel group: give it its communicator before the first run.</summary>
public interface IShardedModel
{
    ICommunicator? Communicator { get; set; }
}
